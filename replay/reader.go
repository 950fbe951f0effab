package replay

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/pcapgo"
)

// MaxRecordLen bounds the length of one captured record (libpcap's own
// largest snapshot length). A record that claims more is reported as
// malformed rather than allocated.
const MaxRecordLen = 262144

// maxBlockLen bounds one pcapng block: a packet block holds one record plus
// its headers and options.
const maxBlockLen = MaxRecordLen + 64<<10

// ErrMalformed is wrapped by the errors Run returns for a capture that is
// not a well-formed pcap or pcapng file (bad magic, a record longer than its
// file allows, a block whose length is inconsistent).
var ErrMalformed = errors.New("malformed capture")

// Format is the container format of a capture.
type Format int

// Capture file formats.
const (
	formatPcap   Format = iota + 1 // classic libpcap, micro- or nanosecond timestamps, either byte order
	formatPcapNG                   // pcapng, any number of sections and interfaces
)

// String gives "pcap" or "pcapng".
func (f Format) String() string {
	switch f {
	case formatPcap:
		return "pcap"
	case formatPcapNG:
		return "pcapng"
	}
	return "unknown"
}

// record is one record of a capture.
type record struct {
	Number    int       // 1-based position of the record in the file
	Timestamp time.Time // when it was captured
	LinkType  LinkType  // the record's link type (pcapng files may mix them)
	Frame     []byte    // the whole record as captured
	// IP is the network-layer packet inside Frame (a sub-slice of it), or
	// nil when Skip says why there is none.
	IP   []byte
	Skip SkipReason
	// OrigLen is the length of the packet on the wire; it exceeds
	// len(Frame) when the capture cut the packet short (snaplen).
	OrigLen int
}

// Truncated reports whether the capture kept less than the whole packet.
func (p *record) Truncated() bool { return p.OrigLen > len(p.Frame) }

// captureReader reads the records of a classic pcap or a pcapng capture, possibly
// gzip-compressed, and takes the link-layer header off each one.
//
// A captureReader is not safe for concurrent use: one goroutine at a time.
type captureReader struct {
	format  Format
	linkPcp LinkType // classic pcap: the file's link type
	pcap    *pcapgo.Reader
	ng      *pcapgo.NgReader
	feed    *ngFeeder
	n       int
	err     error
	skipped map[SkipReason]int
}

// newReader reads the file header from r and returns a reader for its
// records. r is read sequentially and never seeked; the reader buffers it.
func newReader(r io.Reader) (*captureReader, error) {
	br := bufio.NewReader(r)
	magic, err := br.Peek(4)
	if err != nil {
		return nil, fmt.Errorf("replay: reading the file header: %w: %w", ErrMalformed, err)
	}
	if magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("replay: gzip: %w: %w", ErrMalformed, err)
		}
		br = bufio.NewReader(zr)
		if magic, err = br.Peek(4); err != nil {
			return nil, fmt.Errorf("replay: reading the file header: %w: %w", ErrMalformed, err)
		}
	}
	rd := &captureReader{skipped: map[SkipReason]int{}}
	switch binary.BigEndian.Uint32(magic) {
	case 0x0a0d0d0a: // pcapng section header block
		rd.format = formatPcapNG
		rd.feed = &ngFeeder{r: br}
		err = guard(func() error {
			var err error
			rd.ng, err = pcapgo.NewNgReader(rd.feed, pcapgo.NgReaderOptions{WantMixedLinkType: true})
			return err
		})
	case 0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1:
		rd.format = formatPcap
		hdr, perr := br.Peek(24)
		if perr != nil {
			return nil, fmt.Errorf("replay: pcap file header: %w: %w", ErrMalformed, perr)
		}
		order := binary.ByteOrder(binary.LittleEndian)
		if hdr[0] == 0xa1 {
			order = binary.BigEndian
		}
		// The low 16 bits are the link type; the upper ones carry FCS
		// information that does not concern IP packets.
		rd.linkPcp = LinkType(order.Uint32(hdr[20:24]))
		rd.pcap, err = pcapgo.NewReader(br)
		if err == nil {
			// pcapgo allocates what a record header claims before reading
			// it: bound that by the largest snapshot length libpcap uses,
			// whatever the file header says.
			rd.pcap.SetSnaplen(MaxRecordLen)
		}
	default:
		return nil, fmt.Errorf("replay: %w: unknown magic %x (not pcap or pcapng)", ErrMalformed, magic)
	}
	if err != nil {
		return nil, fmt.Errorf("replay: %s header: %w: %w", rd.format, ErrMalformed, err)
	}
	return rd, nil
}

// Format reports the container format.
func (r *captureReader) Format() Format { return r.format }

// LinkType is the link type of a classic pcap file, or of the first
// interface of a pcapng file (0 before the first record if none has been
// described yet).
func (r *captureReader) LinkType() LinkType {
	if r.format == formatPcap {
		return r.linkPcp
	}
	if lt, ok := r.feed.linkType(0); ok {
		return lt
	}
	return 0
}

// Skipped returns how many records were skipped so far, by reason.
func (r *captureReader) Skipped() map[SkipReason]int {
	m := make(map[SkipReason]int, len(r.skipped))
	for k, v := range r.skipped {
		m[k] = v
	}
	return m
}

// Next returns the next record. Records without an IP packet are returned
// too, with Skip set. At the end of the input it returns io.EOF; a file cut
// in the middle of a record gives io.ErrUnexpectedEOF, and malformed input
// an error wrapping ErrMalformed. After an error every call returns it
// again. Next never panics on malformed input.
func (r *captureReader) Next() (record, error) {
	if r.err != nil {
		return record{}, r.err
	}
	var (
		data []byte
		ci   gopacket.CaptureInfo
		lt   LinkType
	)
	err := guard(func() error {
		var err error
		if r.format == formatPcap {
			data, ci, err = r.pcap.ReadPacketData()
			lt = r.linkPcp
			return err
		}
		data, ci, err = r.ng.ReadPacketData()
		if err != nil {
			return err
		}
		var ok bool
		if lt, ok = r.feed.linkType(ci.InterfaceIndex); !ok {
			return fmt.Errorf("%w: packet on undescribed interface %d", ErrMalformed, ci.InterfaceIndex)
		}
		return nil
	})
	if err != nil {
		switch {
		case errors.Is(err, io.EOF) && len(data) == 0 && r.feed.atBoundary():
			r.err = io.EOF
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			r.err = fmt.Errorf("replay: record %d: %w", r.n+1, io.ErrUnexpectedEOF)
		case errors.Is(err, ErrMalformed):
			r.err = fmt.Errorf("replay: record %d: %w", r.n+1, err)
		default:
			r.err = fmt.Errorf("replay: record %d: %w: %w", r.n+1, ErrMalformed, err)
		}
		return record{}, r.err
	}
	r.n++
	p := record{Number: r.n, Timestamp: ci.Timestamp, LinkType: lt, Frame: data, OrigLen: ci.Length}
	p.IP, p.Skip = stripLink(lt, data)
	if p.Skip != skipNone {
		r.skipped[p.Skip]++
	}
	return p, nil
}

// guard turns a panic inside the third-party decoder into an error:
// malformed input must never crash the caller.
func guard(fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%w: decoder panic: %v", ErrMalformed, v)
		}
	}()
	return fn()
}

// ngFeeder hands a pcapng stream to pcapgo one whole block at a time, and
// notes the full 16-bit link type of every interface on the way.
//
// pcapgo keeps link types in 8 bits, so LINUX_SLL2 (276) would read as 20.
// Because the feeder never gives pcapgo a byte of the next block before
// pcapgo has consumed the current one, the interface list it keeps is, at
// the moment pcapgo returns a packet, exactly the list that packet's
// interface index refers to. The feeder also rejects blocks whose lengths
// would make pcapgo allocate more than the block holds.
type ngFeeder struct {
	r      io.Reader
	block  []byte // the current block
	off    int    // how much of it pcapgo has read
	big    bool   // byte order of the current section
	ifaces []LinkType
	snap0  uint32 // snapshot length of interface 0, which simple packet blocks use
	err    error
}

func (f *ngFeeder) Read(p []byte) (int, error) {
	if f.off == len(f.block) {
		if f.err != nil {
			return 0, f.err
		}
		if err := f.nextBlock(); err != nil {
			f.err = err
			return 0, err
		}
	}
	n := copy(p, f.block[f.off:])
	f.off += n
	return n, nil
}

// atBoundary reports whether the stream ended cleanly between blocks.
func (f *ngFeeder) atBoundary() bool {
	return f == nil || (f.off == len(f.block) && errors.Is(f.err, io.EOF))
}

func (f *ngFeeder) linkType(i int) (LinkType, bool) {
	if i < 0 || i >= len(f.ifaces) {
		return 0, false
	}
	return f.ifaces[i], true
}

func (f *ngFeeder) u16(b []byte) uint16 {
	if f.big {
		return binary.BigEndian.Uint16(b)
	}
	return binary.LittleEndian.Uint16(b)
}

func (f *ngFeeder) u32(b []byte) uint32 {
	if f.big {
		return binary.BigEndian.Uint32(b)
	}
	return binary.LittleEndian.Uint32(b)
}

const (
	ngSHB = 0x0a0d0d0a
	ngIDB = 0x00000001
	ngPB  = 0x00000002 // obsolete Packet Block
	ngSPB = 0x00000003
	ngEPB = 0x00000006
)

func (f *ngFeeder) nextBlock() error {
	var hdr [12]byte
	if _, err := io.ReadFull(f.r, hdr[:8]); err != nil {
		if errors.Is(err, io.EOF) {
			return io.EOF
		}
		return io.ErrUnexpectedEOF
	}
	typ := binary.BigEndian.Uint32(hdr[:4]) // the SHB type is a palindrome
	if typ == ngSHB {
		if _, err := io.ReadFull(f.r, hdr[8:12]); err != nil {
			return io.ErrUnexpectedEOF
		}
		switch binary.BigEndian.Uint32(hdr[8:12]) {
		case 0x1a2b3c4d:
			f.big = true
		case 0x4d3c2b1a:
			f.big = false
		default:
			return fmt.Errorf("%w: pcapng section header with bad byte-order magic", ErrMalformed)
		}
		f.ifaces = f.ifaces[:0]
	} else {
		typ = f.u32(hdr[:4])
	}
	length := f.u32(hdr[4:8])
	if length < 12 || length%4 != 0 || length > maxBlockLen {
		return fmt.Errorf("%w: pcapng block type %#x has length %d", ErrMalformed, typ, length)
	}
	if cap(f.block) < int(length) {
		f.block = make([]byte, length)
	}
	f.block = f.block[:length]
	have := copy(f.block, hdr[:8])
	if typ == ngSHB {
		have = copy(f.block, hdr[:12])
	}
	if _, err := io.ReadFull(f.r, f.block[have:]); err != nil {
		return io.ErrUnexpectedEOF
	}
	f.off = 0
	body := f.block[8 : length-4]
	if f.u32(f.block[length-4:]) != length {
		return fmt.Errorf("%w: pcapng block type %#x: trailing length differs", ErrMalformed, typ)
	}
	switch typ {
	case ngIDB:
		if len(body) < 8 {
			return fmt.Errorf("%w: short interface description block", ErrMalformed)
		}
		if len(f.ifaces) == 0 {
			f.snap0 = f.u32(body[4:8])
		}
		f.ifaces = append(f.ifaces, LinkType(f.u16(body[0:2])))
	case ngEPB, ngPB:
		if len(body) < 20 {
			return fmt.Errorf("%w: short packet block", ErrMalformed)
		}
		if caplen := f.u32(body[12:16]); int64(caplen) > int64(len(body)-20) {
			return fmt.Errorf("%w: packet block claims %d captured bytes in a %d-byte block", ErrMalformed, caplen, length)
		}
	case ngSPB:
		if len(body) < 4 {
			return fmt.Errorf("%w: short simple packet block", ErrMalformed)
		}
		// pcapgo takes the original length, bounded by interface 0's
		// snapshot length, as the captured one.
		caplen := f.u32(body[0:4])
		if f.snap0 != 0 && f.snap0 < caplen {
			caplen = f.snap0
		}
		if int64(caplen) > int64(len(body)-4) {
			return fmt.Errorf("%w: simple packet block claims %d bytes in a %d-byte block", ErrMalformed, caplen, length)
		}
	}
	return nil
}
