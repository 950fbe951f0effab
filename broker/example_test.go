//go:build linux

package broker_test

import (
	"context"
	"errors"
	"io/fs"
	"log"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/tundra-go/tundra"
	"github.com/tundra-go/tundra/broker"
	"github.com/tundra-go/tundra/tun"
)

// Ask the broker for a configured TUN device and read packets from it. The
// device disappears when the descriptor is closed or the process exits.
// Needs a running tundra-server and membership of its group, so it is
// compiled but not run.
func ExampleClient_Create() {
	var c broker.Client // DefaultSocketPath
	cr, err := c.Create(context.Background(), broker.Request{
		Addr: netip.MustParsePrefix("fd00:7::1/64"),
		Peer: netip.MustParseAddr("fd00:7::2"),
		MTU:  1420,
		Name: "tun%d",
	})
	var be *broker.Error
	switch {
	case errors.As(err, &be) && errors.Is(err, fs.ErrPermission):
		log.Fatalf("the broker refused (%v): %s", be.Status, be.Message)
	case err != nil:
		log.Fatal(err)
	}
	defer cr.Close()
	log.Printf("got %s (index %d), already up", cr.Name, cr.Index)

	buf := make([]byte, 65535)
	n, err := unix.Read(cr.Fds[0], buf) // non-blocking: EAGAIN until a packet comes
	log.Print(n, err)
}

// The descriptors become a *tun.Device with tun.AdoptQueues, which checks
// them and takes them over without duplicating them.
func ExampleClient_Create_adopt() {
	c := broker.Client{Path: "/run/tundra.sock"}
	cr, err := c.Create(context.Background(), broker.Request{Addr: netip.MustParsePrefix("fe80::1/64")})
	if err != nil {
		log.Fatal(err)
	}
	dev, err := tun.AdoptQueues(cr.Fds)
	if err != nil {
		cr.Close() // still the caller's on error
		log.Fatal(err)
	}
	defer dev.Close()
}

// A minimal daemon: what cmd/tundra-server does, without its flags.
func ExampleServer() {
	srv, err := broker.NewServer(broker.Config{
		Create: tundra.BrokerCreate,
		Group:  "tundra",
		Logger: slog.New(slog.NewJSONHandler(os.Stderr, nil)),
	})
	if err != nil {
		log.Fatal(err)
	}
	l, err := srv.Listen(broker.DefaultSocketPath)
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		<-ctx.Done()
		srv.Shutdown(context.Background()) // removes the socket
	}()
	if err := srv.Serve(l); !errors.Is(err, broker.ErrServerClosed) {
		log.Fatal(err)
	}
}
