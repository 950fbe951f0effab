package loop

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// On macOS system calls go through libc (see the package doc). readv and
// writev go through libc's syscall(2) entry because x/sys/unix exports them
// only with [][]byte arguments, which would rebuild the iovecs per call.

func errnoOf(err error) unix.Errno {
	if err == nil {
		return 0
	}
	if e, ok := err.(unix.Errno); ok {
		return e
	}
	return unix.EIO
}

func readFD(fd int, b []byte) (int, unix.Errno) {
	n, err := unix.Read(fd, b)
	return n, errnoOf(err)
}

func writeFD(fd int, b []byte) (int, unix.Errno) {
	n, err := unix.Write(fd, b)
	return n, errnoOf(err)
}

func readvFD(fd int, iov []unix.Iovec) (int, unix.Errno) {
	//lint:ignore SA1019 x/sys/unix's Readv takes [][]byte and would rebuild the iovecs on every packet; readv's number is part of the stable syscall(2) interface.
	n, _, e := unix.Syscall(unix.SYS_READV, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(iov))), uintptr(len(iov)))
	return int(n), e
}

func writevFD(fd int, iov []unix.Iovec) (int, unix.Errno) {
	//lint:ignore SA1019 as readvFD: Writev takes [][]byte and would rebuild the iovecs on every packet.
	n, _, e := unix.Syscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(iov))), uintptr(len(iov)))
	return int(n), e
}
