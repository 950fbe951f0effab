package tunbpf

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

func explainLoad(op string, err error) error {
	if errors.Is(err, unix.EPERM) {
		return fmt.Errorf("tunbpf: %s: %w (loading a socket filter needs CAP_BPF or CAP_SYS_ADMIN, "+
			"unless the sysctl kernel.unprivileged_bpf_disabled is 0)", op, err)
	}
	return fmt.Errorf("tunbpf: %s: %w", op, err)
}
