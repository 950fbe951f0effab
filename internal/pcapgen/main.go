// Command pcapgen writes the captures in testdata/pcaps and, next to each,
// its expectation: what the kernel must do with every record when the
// capture is replayed into a TUN device (see replay.Expect). Run it with
// go generate ./replay/ after changing it; a test fails while the files
// in the repository differ from what it writes.
//
// The packets are built with gopacket's layers; the files are written with
// pcapgo where it can (pcapng, little-endian classic pcap) and by a small
// writer of its own where it cannot (big-endian files, and link types above
// 255, which pcapgo's 8-bit LinkType cannot express).
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	dir := flag.String("dir", "testdata/pcaps", "directory to write the captures into")
	flag.Parse()
	files, err := Generate()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pcapgen:", err)
		os.Exit(1)
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "pcapgen:", err)
		os.Exit(1)
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(*dir, f.Name), f.Data, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "pcapgen:", err)
			os.Exit(1)
		}
	}
}
