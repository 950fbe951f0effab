//go:build !unix

package broker

func closeFD(fd int) error { return ErrNotSupported }
