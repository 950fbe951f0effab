package packet

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// gopacket, written by others, checks the checksums this package computes.
func TestUDPChecksumsVerifyWithGopacket(t *testing.T) {
	for _, tc := range []struct{ src, dst string }{
		{"10.0.0.1:1234", "10.0.0.2:53"},
		{"[fd00::1]:1234", "[fd00::2]:9"},
	} {
		for _, payload := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("abc"), 333)} {
			p, err := UDP(netip.MustParseAddrPort(tc.src), netip.MustParseAddrPort(tc.dst), payload)
			if err != nil {
				t.Fatal(err)
			}
			first := layers.LayerTypeIPv4
			if p[0]>>4 == 6 {
				first = layers.LayerTypeIPv6
			}
			pkt := gopacket.NewPacket(p, first, gopacket.Default)
			udp, ok := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
			if !ok {
				t.Fatalf("%s: gopacket found no UDP layer: %v", tc.src, pkt.ErrorLayer())
			}
			want := udp.Checksum
			if ip4, ok := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
				udp.SetNetworkLayerForChecksum(ip4)
				ipWant := ip4.Checksum
				buf := gopacket.NewSerializeBuffer()
				if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}, ip4, udp, gopacket.Payload(payload)); err != nil {
					t.Fatal(err)
				}
				if got := gopacket.NewPacket(buf.Bytes(), layers.LayerTypeIPv4, gopacket.Default).Layer(layers.LayerTypeIPv4).(*layers.IPv4).Checksum; got != ipWant {
					t.Errorf("IPv4 header checksum %#04x, gopacket computes %#04x", ipWant, got)
				}
			} else {
				ip6 := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
				udp.SetNetworkLayerForChecksum(ip6)
			}
			buf := gopacket.NewSerializeBuffer()
			if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, udp, gopacket.Payload(payload)); err != nil {
				t.Fatal(err)
			}
			got := gopacket.NewPacket(buf.Bytes(), layers.LayerTypeUDP, gopacket.Default).Layer(layers.LayerTypeUDP).(*layers.UDP).Checksum
			if got != want {
				t.Errorf("%s, %d bytes: UDP checksum %#04x, gopacket computes %#04x", tc.src, len(payload), want, got)
			}
			gotPayload, err := UDPPayload(p)
			if err != nil || !bytes.Equal(gotPayload, payload) {
				t.Errorf("UDPPayload: %q, %v", gotPayload, err)
			}
			in, err := Parse(p)
			if err != nil || in.Src.String()+"" == "" || in.DstPort != netip.MustParseAddrPort(tc.dst).Port() {
				t.Errorf("Parse: %+v, %v", in, err)
			}
		}
	}
}

func TestRefusals(t *testing.T) {
	if _, err := UDP(netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("[fd00::1]:1"), nil); err == nil {
		t.Error("mixed families accepted")
	}
	for _, bad := range [][]byte{nil, {0x45}, {0x60, 0, 0, 0, 0xff, 0xff}, {0x10}, append([]byte{0x45, 0, 0xff, 0xff}, make([]byte, 16)...)} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse accepted % x", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	p, _ := UDP(netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("10.0.0.2:2"), []byte("seed"))
	f.Add(p)
	p, _ = UDP(netip.MustParseAddrPort("[fd00::1]:1"), netip.MustParseAddrPort("[fd00::2]:2"), []byte("seed"))
	f.Add(p)
	f.Fuzz(func(t *testing.T, b []byte) {
		Parse(b)
		UDPPayload(b)
	})
}

func TestTCPChecksumsVerifyWithGopacket(t *testing.T) {
	for _, tc := range []struct{ src, dst string }{{"10.0.0.1:1234", "10.0.0.2:80"}, {"[fd00::1]:1234", "[fd00::2]:80"}} {
		p, err := TCP(netip.MustParseAddrPort(tc.src), netip.MustParseAddrPort(tc.dst), 1000, 2000, TCPAck|TCPPsh, []byte("hello tcp"))
		if err != nil {
			t.Fatal(err)
		}
		first := layers.LayerTypeIPv4
		if p[0]>>4 == 6 {
			first = layers.LayerTypeIPv6
		}
		pkt := gopacket.NewPacket(p, first, gopacket.Default)
		tcp, ok := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if !ok || tcp.Seq != 1000 || tcp.Ack != 2000 || !tcp.ACK || !tcp.PSH || string(tcp.Payload) != "hello tcp" {
			t.Fatalf("%s: gopacket reads %+v", tc.src, tcp)
		}
		want := tcp.Checksum
		net := pkt.NetworkLayer()
		tcp.SetNetworkLayerForChecksum(net)
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, tcp, gopacket.Payload(tcp.Payload)); err != nil {
			t.Fatal(err)
		}
		if got := gopacket.NewPacket(buf.Bytes(), layers.LayerTypeTCP, gopacket.Default).Layer(layers.LayerTypeTCP).(*layers.TCP).Checksum; got != want {
			t.Errorf("%s: TCP checksum %#04x, gopacket computes %#04x", tc.src, want, got)
		}
	}
}
