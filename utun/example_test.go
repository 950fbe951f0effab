package utun_test

import (
	"errors"
	"fmt"
	"log"
	"net/netip"

	"github.com/tundra-go/tundra/loop"
	"github.com/tundra-go/tundra/utun"
)

// The header in front of each packet on a utun socket is the family in
// network byte order, chosen from the IP version.
func ExamplePutFamilyHeader() {
	hdr := make([]byte, utun.HeaderLen)
	for _, pkt := range [][]byte{{0x45, 0x00}, {0x60, 0x00}, {0x50}} {
		if err := utun.PutFamilyHeader(hdr, pkt); err != nil {
			fmt.Println(errors.Is(err, utun.ErrNotIP), err)
			continue
		}
		fam, _ := utun.ParseFamilyHeader(hdr)
		fmt.Printf("% x -> family %d\n", hdr, fam)
	}
	// Output:
	// 00 00 00 02 -> family 2
	// 00 00 00 1e -> family 30
	// true utun: frame: not an IPv4 or IPv6 packet: IP version nibble is 5 (first byte 0x50)
}

// The builders are pure: they can be inspected anywhere.
func ExampleMarshalIn6Aliasreq() {
	req, err := utun.MarshalIn6Aliasreq("utun7", netip.MustParsePrefix("fd00::1/64"), netip.Addr{}, utun.In6IFFNoDAD)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(req), "bytes")
	fmt.Printf("ifra_addr       % x\n", req[16:44])
	fmt.Printf("ifra_prefixmask % x\n", req[72:100])
	fmt.Printf("ifra_flags      % x\n", req[100:104])
	fmt.Printf("lifetimes       % x\n", req[104:128])

	_, err = utun.MarshalIn6Aliasreq("utun7", netip.MustParsePrefix("fd00::1/64"), netip.MustParseAddr("fd00::2"), 0)
	fmt.Println(err)
	// Output:
	// 128 bytes
	// ifra_addr       1c 1e 00 00 00 00 00 00 fd 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 00 00 00 00
	// ifra_prefixmask 1c 1e 00 00 00 00 00 00 ff ff ff ff ff ff ff ff 00 00 00 00 00 00 00 00 00 00 00 00
	// ifra_flags      20 00 00 00
	// lifetimes       00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 ff ff ff ff ff ff ff ff
	// utun: marshal in6_aliasreq utun7: invalid argument: a peer needs a /128 address on a point-to-point interface, have fd00::1/64
}

func ExampleParseName() {
	unit, err := utun.ParseName("utun7")
	fmt.Println(unit, err)
	_, err = utun.ParseName("en0")
	fmt.Println(err)
	// Output:
	// 7 <nil>
	// utun: parse name en0: invalid name: not "utun" followed by a unit number
}

// Creating a device, configuring it and handing its socket to a loop
// (macOS, as root; elsewhere Open fails with ErrNotSupported).
func ExampleOpen() {
	dev, err := utun.Open(utun.AnyUnit)
	if errors.Is(err, utun.ErrNotSupported) {
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	if err := dev.AddAddr(netip.MustParsePrefix("10.9.0.1/24"), netip.MustParseAddr("10.9.0.2"), false); err != nil {
		log.Fatal(err)
	}
	if err := dev.AddAddr(netip.MustParsePrefix("fd11:b7b7:4360::2/64"), netip.Addr{}, true); err != nil {
		log.Fatal(err)
	}
	if err := dev.SetMTU(1380); err != nil {
		log.Fatal(err)
	}

	l, err := loop.New()
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	_, err = l.AttachPacketFD(dev.Fd(), loop.PacketConfig{
		Framer: utun.Framer{}, // adds and strips the 4-byte family header
		OnReady: func(p *loop.PacketFD, ev loop.Events) {
			buf := make([]byte, 1380)
			for {
				n, err := p.Recv(buf) // buf[:n] is the bare IP packet
				if err != nil {
					return // loop.ErrWouldBlock: called again when readable
				}
				_ = p.Send(buf[:n]) // echo it back, header chosen from buf[0]
			}
		},
		Close: dev.Close, // the loop closes the device with itself
	})
	if err != nil {
		dev.Close()
		log.Fatal(err)
	}
	fmt.Println("serving", dev.Name())
}
