package replay

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Print writes a human-readable summary: how many packets were written,
// refused by the kernel (by errno), answered, dropped, delivered; what was
// skipped; how the addresses were moved; and the kernel counters that
// changed. It returns the first write error.
func (s *Summary) Print(w io.Writer) error {
	bw := bufio.NewWriter(w)
	name := s.Name
	if name == "" {
		name = "capture"
	}
	fmt.Fprintf(bw, "replay %s (%s, %s) into %s: %d records in %v\n", name, s.Format, s.LinkType, s.Device, s.Records, s.Duration.Round(time.Millisecond))
	fmt.Fprintf(bw, "  written   %d: answered %d, dropped %d, delivered %d, queued %d, accepted %d", s.Written, s.Answered, s.Dropped, s.Delivered, s.Queued, s.Accepted)
	if s.Unknown > 0 {
		fmt.Fprintf(bw, ", fate unknown %d", s.Unknown)
	}
	fmt.Fprintln(bw)
	fmt.Fprintf(bw, "  refused   %d%s\n", s.Refused, byCount(s.RefusedBy))
	skipped := map[string]int{}
	for k, v := range s.SkippedBy {
		skipped[string(k)] = v
	}
	fmt.Fprintf(bw, "  skipped   %d%s\n", s.Skipped, byCount(skipped))
	fmt.Fprintf(bw, "  device read %d packets, %d answering nothing replayed\n", s.DeviceRead, s.Unsolicited)
	if s.ReadErr != nil {
		fmt.Fprintf(bw, "  reading the device stopped: %v\n", s.ReadErr)
	}
	if s.Capture.Packets > 0 || s.Capture.Dropped > 0 {
		fmt.Fprintf(bw, "  captured %d packets, %d dropped by the recorder\n", s.Capture.Packets, s.Capture.Dropped)
	}
	if len(s.Mappings) > 0 {
		parts := make([]string, len(s.Mappings))
		for i, m := range s.Mappings {
			parts[i] = fmt.Sprintf("%v -> %v", m.Orig, m.New)
		}
		fmt.Fprintf(bw, "  addresses: %s\n", strings.Join(parts, ", "))
	}
	if s.CountersNote != "" {
		fmt.Fprintf(bw, "  %s\n", s.CountersNote)
	} else if len(s.Counters) > 0 {
		fmt.Fprintf(bw, "  kernel counters: %s\n", counters(s.Counters))
	}
	return bw.Flush()
}

// PrintPackets writes one block per record: its number, verdict and
// description, then the answers the kernel sent and the counters that
// changed while it was written. It returns the first write error.
func (s *Summary) PrintPackets(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for i := range s.Packets {
		o := &s.Packets[i]
		v := string(o.Verdict)
		switch {
		case o.Verdict == VerdictSkipped:
			v += " " + string(o.Skip)
		case o.Verdict == VerdictRefused && o.Errno != 0:
			v += " " + errnoName(o.Errno)
		}
		fmt.Fprintf(bw, "#%-4d %-20s %s\n", o.Number, v, o.Desc)
		if o.Verdict == VerdictRefused {
			fmt.Fprintf(bw, "      error: %v\n", o.Err)
		}
		if o.Fixed != 0 {
			fmt.Fprintf(bw, "      fixed checksums: %v\n", o.Fixed)
		}
		for _, a := range o.Answers {
			fmt.Fprintf(bw, "      <- %s after %v: %s\n", a.Kind, a.Time.Sub(o.Sent).Round(time.Microsecond), a.Desc)
		}
		if len(o.Counters) > 0 {
			fmt.Fprintf(bw, "      counters: %s\n", counters(o.Counters))
		}
	}
	return bw.Flush()
}

func byCount(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func counters(cs []Counter) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = fmt.Sprintf("%s %+d", c.Name, c.Delta)
	}
	return strings.Join(parts, ", ")
}

// Delta returns the change of the named counter in cs (0 if absent).
func Delta(cs []Counter, name string) int64 {
	for _, c := range cs {
		if c.Name == name {
			return c.Delta
		}
	}
	return 0
}
