//go:build unix

// Command tundra-server is Tundra's privileged broker: it creates TUN/TAP
// devices for members of a group and hands them over a Unix socket. See
// docs/broker.md for installation and broker/PROTOCOL.md for the protocol.
// It also serves the Elixir Tundra library's clients in place of that
// library's tundra_server (docs/broker.md, "Replacing Tundra's
// tundra_server").
//
// Usage:
//
//	tundra-server [-socket /var/run/tundra.sock] [-group tundra] [-policy FILE]
//
// It runs until SIGINT or SIGTERM, then stops accepting, removes its socket,
// lets the requests in progress finish (for up to 10 s) and exits 0.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/tundra-go/tundra"
	"github.com/tundra-go/tundra/broker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, tundra.BrokerCreate, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "tundra-server:", err)
		os.Exit(1)
	}
}

// shutdownGrace is how long requests in progress get after a signal.
const shutdownGrace = 10 * time.Second

// run parses args, serves until ctx ends, and shuts down. create makes
// the devices: the server knows it only as its own broker.CreateFunc
// (main gives tundra.BrokerCreate), so a test may give another.
func run(ctx context.Context, create broker.CreateFunc, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tundra-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("socket", broker.DefaultSocketPath, "Unix socket `path` to listen on")
	group := fs.String("group", broker.DefaultGroup, "group (`name or gid`) whose members may ask for devices; root always may")
	policyFile := fs.String("policy", "", "policy `file` (JSON); the defaults apply without one")
	mode := fs.String("mode", fmt.Sprintf("%#o", broker.DefaultSocketMode), "socket file `mode` (octal)")
	maxConns := fs.Int("max-conns", broker.DefaultMaxConns, "connections handled at once")
	maxPerUID := fs.Int("max-conns-per-uid", broker.DefaultMaxConnsPerUID, "connections of one uid handled at once")
	timeout := fs.Duration("timeout", broker.DefaultTimeout, "time a client has to send its request")
	logFormat := fs.String("log", "text", "log format: text or json (to standard error)")
	printPolicy := fs.Bool("print-policy", false, "print the effective policy as JSON and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil // -h or -help: the usage is printed; that is success
		}
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	policy := broker.DefaultPolicy()
	if *policyFile != "" {
		f, err := os.Open(*policyFile)
		if err != nil {
			return fmt.Errorf("-policy: %w", err)
		}
		policy, err = broker.LoadPolicy(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("-policy %s: %w", *policyFile, err)
		}
	}
	if *printPolicy {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(policy)
	}
	m, err := strconv.ParseUint(*mode, 8, 32)
	if err != nil || m == 0 || m > 0o777 {
		return fmt.Errorf("-mode %q: want an octal permission such as 0660", *mode)
	}

	var handler slog.Handler
	switch *logFormat {
	case "text":
		handler = slog.NewTextHandler(stderr, nil)
	case "json":
		handler = slog.NewJSONHandler(stderr, nil)
	default:
		return fmt.Errorf("-log %q: want text or json", *logFormat)
	}
	logger := slog.New(handler)

	srv, err := broker.NewServer(broker.Config{
		Create:         create,
		Policy:         &policy,
		Group:          *group,
		SocketMode:     os.FileMode(m),
		MaxConns:       *maxConns,
		MaxConnsPerUID: *maxPerUID,
		Timeout:        *timeout,
		Logger:         logger,
	})
	if err != nil {
		return err
	}
	l, err := srv.Listen(*socket)
	if err != nil {
		srv.Close()
		return err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()

	select {
	case err := <-served:
		srv.Close()
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down", "socket", *socket)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	serr := srv.Shutdown(sctx)
	if err := <-served; !errors.Is(err, broker.ErrServerClosed) {
		return err
	}
	if serr != nil {
		return fmt.Errorf("shutdown: %w", serr)
	}
	logger.Info("stopped")
	return nil
}
