//go:build !linux

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "tun2udp runs on Linux: it rests on batched UDP (recvmmsg, sendmmsg, UDP_SEGMENT)")
	os.Exit(1)
}
