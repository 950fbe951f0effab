// Command tunctl creates and deletes persistent TUN/TAP devices for a
// user, as tunctl(8) from Debian's uml-utilities does, with the same
// options, messages and exit status, and lists them. The host's
// administrator makes a device for a user, who may then open it without
// privilege but may not change the host side:
//
//	tunctl -u alice              # Set 'tap0' persistent and owned by uid 1000
//	tunctl -d tap0               # Set 'tap0' nonpersistent
//
// Beyond the original it makes TUN devices (-n), multi-queue (-q) and
// vnet_hdr (-vnet-hdr) ones, configures the link over rtnetlink (-m MTU,
// -a ADDR[/LEN] with -peer, -up), and lists every TUN/TAP device with its
// owner, group and flags (tunctl show [-j] [name]). Where the original is
// wrong, it differs on purpose: -d on a name that does not exist fails
// instead of creating and deleting it, -d deletes TUN devices as well as
// TAP ones, -d on another kind of device names its kind, -h exits 0, names
// longer than 15 bytes are refused rather than cut, and so are ids
// outside 0..4294967294. See docs/tunctl.md.
//
// Exit status: 0 on success, 1 on any failure with the reason on standard
// error.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run carries out one command line and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	r, err := parse(args, lookupUser, lookupGroup)
	var ue usageError
	switch {
	case errors.As(err, &ue):
		if ue.msg != "" {
			fmt.Fprintln(stderr, ue.msg)
		}
		fmt.Fprint(stderr, usage)
		return 1
	case err != nil:
		fmt.Fprintln(stderr, "tunctl:", err)
		return 1
	case r.help:
		fmt.Fprint(stdout, usage)
		return 0
	}
	switch {
	case r.show:
		err = show(r, stdout)
	case r.delete:
		err = remove(r, stdout)
	default:
		err = create(r, stdout, stderr)
	}
	if err != nil {
		fmt.Fprintln(stderr, "tunctl:", err)
		return 1
	}
	return 0
}
