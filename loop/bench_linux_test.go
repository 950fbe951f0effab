package loop

import (
	"errors"
	"net"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// The benchmarks compare the loop with the same work done the usual Go way,
// on the netpoller (net.Conn over the same kind of descriptor), in the same
// run. Compare ratios, not absolute numbers: the machine is shared.
//
//	go test -run '^$' -bench . -benchmem ./loop/

// blockingPair is a datagram socket pair whose first end is blocking: the
// benchmark's own side, driven with plain read and write.
func blockingPair(b *testing.B) (client, server int) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	if err := unix.SetNonblock(fds[1], true); err != nil {
		b.Fatal(err)
	}
	return fds[0], fds[1]
}

// echoRoundTrips sends one datagram per op and waits for it to come back:
// each op costs one wakeup of the echoing side.
func echoRoundTrips(b *testing.B, client int) {
	msg := make([]byte, 64)
	buf := make([]byte, 64)
	b.ResetTimer()
	for range b.N {
		if _, err := retryEINTR(func() (int, error) { return unix.Write(client, msg) }); err != nil {
			b.Fatal(err)
		}
		if _, err := retryEINTR(func() (int, error) { return unix.Read(client, buf) }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDispatch measures the cost of one readiness event: a wakeup, a
// callback, a read and a write, on the loop and on the netpoller.
func BenchmarkDispatch(b *testing.B) {
	b.Run("loop", func(b *testing.B) {
		client, server := blockingPair(b)
		defer unix.Close(client)
		l, err := New()
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		buf := make([]byte, 64)
		if _, err := l.AttachPacketFD(server, PacketConfig{OnReady: func(p *PacketFD, ev Events) {
			for {
				n, err := p.Recv(buf)
				if err != nil {
					return
				}
				if err := p.Send(buf[:n]); err != nil {
					b.Error(err)
					return
				}
			}
		}}); err != nil {
			b.Fatal(err)
		}
		echoRoundTrips(b, client)
		b.StopTimer()
		s := l.Stats()
		b.ReportMetric(float64(s.Syscalls)/float64(b.N), "syscalls/op")
	})
	b.Run("netpoll", func(b *testing.B) {
		client, server := blockingPair(b)
		defer unix.Close(client)
		f := os.NewFile(uintptr(server), "server")
		conn, err := net.FileConn(f) // dups the descriptor into the netpoller
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			buf := make([]byte, 64)
			for {
				n, err := conn.Read(buf)
				if err != nil {
					return
				}
				if _, err := conn.Write(buf[:n]); err != nil {
					return
				}
			}
		}()
		echoRoundTrips(b, client)
		b.StopTimer()
		conn.Close()
		<-done
	})
}

// BenchmarkPacketIO measures the per-packet cost of batched I/O: 64
// datagrams written into a socket pair and read back out, all on one
// thread, so only the I/O path differs: the loop's raw non-blocking calls
// against net.Conn on the netpoller. One op is one packet written and read.
func BenchmarkPacketIO(b *testing.B) {
	const batch = 64
	payload := make([]byte, 100)
	b.Run("loop", func(b *testing.B) { benchPacketIO(b, payload, WithBackend(BackendEpoll)) })
	if URingUnavailable() == nil {
		// Reads from the ring and linked write batches: a packet sent is
		// read once the kernel has run the ring's read, which deliver
		// has it do, as the loop's next wait would.
		b.Run("loop-uring", func(b *testing.B) { benchPacketIO(b, payload, WithBackend(BackendURing)) })
	}
	b.Run("netpoll", func(b *testing.B) {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		conns := make([]net.Conn, 2)
		for i, fd := range fds {
			f := os.NewFile(uintptr(fd), "pair")
			conns[i], err = net.FileConn(f)
			f.Close()
			if err != nil {
				b.Fatal(err)
			}
			defer conns[i].Close()
		}
		buf := make([]byte, 2048)
		b.ReportAllocs()
		b.SetBytes(int64(len(payload)))
		b.ResetTimer()
		for done := 0; done < b.N; done += batch {
			n := min(batch, b.N-done)
			for range n {
				if _, err := conns[0].Write(payload); err != nil {
					b.Fatal(err)
				}
			}
			for range n {
				if _, err := conns[1].Read(buf); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// BenchmarkPost measures a function posted from another goroutine and run
// on the loop, with coalesced wakeups.
func BenchmarkPost(b *testing.B) {
	l, err := New(QueueSize(1 << 16))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	fn := func() {}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for {
			err := l.Post(fn)
			if err == nil {
				break
			}
			if !errors.Is(err, ErrQueueFull) {
				b.Fatal(err)
			}
		}
	}
	l.Do(func() {})
}

// retryEINTR repeats a blocking call the Go runtime's preemption signals
// interrupted.
func retryEINTR(call func() (int, error)) (int, error) {
	for {
		n, err := call()
		if err != unix.EINTR {
			return n, err
		}
	}
}

// benchPacketIO is BenchmarkPacketIO on a loop made with opts.
func benchPacketIO(b *testing.B, payload []byte, opts ...Option) {
	const batch = 64
	l, err := New(opts...)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	noop := func(*PacketFD, Events) {}
	tx, err := l.AttachPacketFD(fds[0], PacketConfig{OnReady: noop})
	if err != nil {
		b.Fatal(err)
	}
	rx, err := l.AttachPacketFD(fds[1], PacketConfig{OnReady: noop, Budget: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	out := make([][]byte, batch)
	in := make([][]byte, batch)
	for i := range out {
		out[i] = payload
		in[i] = make([]byte, 2048)
	}
	sizes := make([]int, batch)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	roundTrips(b, l, batch,
		func(n int) error { _, err := tx.SendBatch(out[:n], 0); return err },
		func(n int) (int, error) { return rx.RecvBatch(in[:n], sizes, 0) })
}

// roundTrips sends and receives b.N packets on l, batch at a time, all in
// one callback, with the timer running only for that: send sends the
// first n of a batch, recv receives up to n. A recv that finds nothing
// yet (on io_uring, where the kernel reads into the ring only when the
// loop enters it) has the kernel deliver, as the loop's next wait would,
// and tries again.
func roundTrips(b *testing.B, l *Loop, batch int, send func(n int) error, recv func(n int) (int, error)) {
	b.Helper()
	var ioErr error
	b.ResetTimer()
	l.Do(func() {
		for done := 0; done < b.N; done += batch {
			n := min(batch, b.N-done)
			if err := send(n); err != nil {
				ioErr = err
				return
			}
			for got := 0; got < n; {
				k, err := recv(n - got)
				if err == ErrWouldBlock {
					deliver(l)
					continue
				}
				if err != nil {
					ioErr = err
					return
				}
				got += k
			}
		}
	})
	b.StopTimer()
	if ioErr != nil {
		b.Fatal(ioErr)
	}
}
