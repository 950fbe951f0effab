//go:build !linux

package tunbpf

import "fmt"

func explainLoad(op string, err error) error {
	return fmt.Errorf("tunbpf: %s: %w", op, err)
}
