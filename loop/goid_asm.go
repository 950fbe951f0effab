//go:build amd64 || arm64

package loop

// curg identifies the calling goroutine: the address of its runtime g,
// stable for the goroutine's life. The loop compares it with the value it
// recorded on its own goroutine; that costs a load, not a system call.
func curg() uintptr
