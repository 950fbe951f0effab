package netnstest

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"time"
)

// TransferTCP sends size pseudo-random bytes over one TCP connection from
// a client in from to a listener it opens at addr ("host:port") in to,
// and checks that they arrive byte for byte (SHA-256 of both sides). It
// returns how long the transfer took, or why it failed.
func TransferTCP(from, to *Namespace, addr string, size int, within time.Duration) (time.Duration, error) {
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{7}).Read(data)
	want := sha256.Sum256(data)
	var ln net.Listener
	if err := to.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		return 0, fmt.Errorf("listen on %s: %w", addr, err)
	}
	defer ln.Close()
	type result struct {
		sum [32]byte
		n   int64
		err error
	}
	got := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		defer c.Close()
		h := sha256.New()
		n, err := io.Copy(h, c)
		r := result{n: n, err: err}
		copy(r.sum[:], h.Sum(nil))
		got <- r
	}()
	var conn net.Conn
	if err := from.Do(func() error {
		var err error
		conn, err = net.DialTimeout("tcp", addr, 5*time.Second)
		return err
	}); err != nil {
		return 0, fmt.Errorf("dial %s: %w", addr, err)
	}
	start := time.Now()
	conn.SetWriteDeadline(start.Add(within))
	_, err := io.Copy(conn, bytes.NewReader(data))
	conn.Close()
	if err != nil {
		return 0, fmt.Errorf("sending: %w", err)
	}
	select {
	case r := <-got:
		if r.err != nil {
			return 0, fmt.Errorf("receiving: %w", r.err)
		}
		if r.n != int64(size) || r.sum != want {
			return 0, fmt.Errorf("received %d of %d bytes, SHA-256 equal: %v", r.n, size, r.sum == want)
		}
	case <-time.After(within):
		return 0, fmt.Errorf("transfer of %d bytes not finished after %v", size, within)
	}
	return time.Since(start), nil
}
