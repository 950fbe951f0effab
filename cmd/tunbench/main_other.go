//go:build !linux

package main

import (
	"fmt"
	"os"
)

// tunbench measures Linux TUN devices inside network namespaces; neither
// exists elsewhere.
func main() {
	fmt.Fprintln(os.Stderr, "tunbench runs on Linux")
	os.Exit(1)
}
