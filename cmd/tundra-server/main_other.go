//go:build !unix

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "tundra-server: not supported on this operating system")
	os.Exit(1)
}
