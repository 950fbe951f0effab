package tunbpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/tundra-go/tundra/tun"
)

// These tests need no kernel: they check what Spec builds and refuses.

func TestFilterSpecRefusesInvalid(t *testing.T) {
	for _, c := range []struct {
		f    Filter
		want string
	}{
		{Filter{Family: 3}, "unknown Family 3"},
		{Filter{SnapLen: math.MaxInt32 + 1}, "SnapLen 2147483648"},
		{Filter{AllowPrefixes: []netip.Prefix{{}}}, "invalid prefix"},
		{Filter{DropPrefixes: []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr("fd00::1"), 129)}}, "invalid prefix"},
	} {
		spec, err := c.f.Spec()
		if !errors.Is(err, ErrInvalidFilter) || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "tunbpf: Filter.Spec: ") {
			t.Errorf("Filter%+v.Spec() = %v, want ErrInvalidFilter mentioning %q", c.f, err, c.want)
		}
		if spec != nil {
			t.Errorf("Filter%+v.Spec() returned a spec with its error", c.f)
		}
		if _, err := c.f.Program(); !errors.Is(err, ErrInvalidFilter) {
			t.Errorf("Filter%+v.Program() = %v, want ErrInvalidFilter before loading", c.f, err)
		}
	}
}

func TestSpecShapes(t *testing.T) {
	count := func(f Filter) int {
		t.Helper()
		spec, err := f.Spec()
		if err != nil {
			t.Fatalf("Filter%+v.Spec: %v", f, err)
		}
		if spec.Type != ebpf.SocketFilter || spec.Name != "tundra_filter" {
			t.Errorf("spec type %v name %q", spec.Type, spec.Name)
		}
		return len(spec.Instructions)
	}
	// The zero Filter returns the packet length: load len, exit.
	if n := count(Filter{}); n != 3 {
		t.Errorf("zero Filter: %d instructions, want 3", n)
	}
	// A Filter that can pass nothing is "return 0".
	none := Filter{Family: IPv6Only, AllowPrefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	spec, _ := none.Spec()
	if fmt.Sprint(spec.Instructions) != fmt.Sprint(asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}) {
		t.Errorf("drop-everything filter:\n%v", spec.Instructions)
	}
	// Each extra port costs one instruction; duplicates cost nothing.
	base := count(Filter{DropPorts: []uint16{1}})
	if n := count(Filter{DropPorts: []uint16{1, 2, 3, 3, 2}}); n != base+2 {
		t.Errorf("3 distinct ports: %d instructions, want %d", n, base+2)
	}
	// Every label a jump names exists (cilium resolves them at load time,
	// too late for a test without privileges).
	for _, f := range []Filter{none, {Protocols: []uint8{17}}, {AllowPorts: []uint16{80}, AllowPrefixes: []netip.Prefix{netip.MustParsePrefix("::/0")}}} {
		spec, _ := f.Spec()
		checkLabels(t, spec.Instructions)
	}
	checkLabels(t, FlowSteering{}.Spec().Instructions)
	if s := (FlowSteering{}).Spec(); s.Type != ebpf.SocketFilter || s.Name != "tundra_steer" {
		t.Errorf("steering spec type %v name %q", s.Type, s.Name)
	}
	// Specs are fresh: changing one leaves the next untouched.
	a, _ := Filter{SnapLen: 9}.Spec()
	a.Instructions[0] = asm.Return()
	if b, _ := (Filter{SnapLen: 9}).Spec(); b.Instructions[0].OpCode == asm.Return().OpCode {
		t.Error("Spec shares instructions between calls")
	}
}

func checkLabels(t *testing.T, insns asm.Instructions) {
	t.Helper()
	have := map[string]bool{}
	for _, ins := range insns {
		if s := ins.Symbol(); s != "" {
			if have[s] {
				t.Errorf("label %q defined twice", s)
			}
			have[s] = true
		}
	}
	for _, ins := range insns {
		if r := ins.Reference(); r != "" && !have[r] {
			t.Errorf("jump to undefined label %q", r)
		}
	}
	if err := insns.Marshal(new(strings.Builder), binary.LittleEndian); err != nil {
		t.Errorf("instructions do not encode: %v", err)
	}
}

func TestFamilyString(t *testing.T) {
	for f, want := range map[Family]string{AnyFamily: "any", IPv4Only: "IPv4", IPv6Only: "IPv6", 9: "Family(9)"} {
		if got := f.String(); got != want {
			t.Errorf("Family(%d).String() = %q, want %q", uint8(f), got, want)
		}
	}
}

// A not-supported error from package tun also matches
// ebpf.ErrNotSupported, and stays an *tun.OpError.
func TestNotSupportedWrapping(t *testing.T) {
	for _, cause := range []error{tun.ErrBPFNotSupported, tun.ErrNotSupported} {
		err := withEBPFNotSupported(&tun.OpError{Op: "TUNSETFILTEREBPF", Name: "x", Err: fmt.Errorf("%w: detail", cause)})
		var oe *tun.OpError
		if !errors.As(err, &oe) || oe.Op != "TUNSETFILTEREBPF" || !errors.Is(err, cause) || !errors.Is(err, ebpf.ErrNotSupported) {
			t.Errorf("wrapping %v: got %v", cause, err)
		}
	}
	other := &tun.OpError{Op: "TUNSETFILTEREBPF", Err: errors.New("boom")}
	if err := withEBPFNotSupported(other); err != other || errors.Is(err, ebpf.ErrNotSupported) {
		t.Errorf("an unrelated error was changed: %v", err)
	}
	if withEBPFNotSupported(nil) != nil {
		t.Error("nil became an error")
	}
}
