package operr

import (
	"errors"
	"io"
	"testing"
)

type tagA struct{}

func (tagA) Package() string { return "a" }

type tagB struct{}

func (tagB) Package() string { return "b" }

func TestError(t *testing.T) {
	tests := []struct {
		err  *Error[tagA]
		want string
	}{
		{&Error[tagA]{Op: "open", Name: "x0", Err: io.EOF}, "a: open x0: EOF"},
		{&Error[tagA]{Op: "open", Err: io.EOF}, "a: open: EOF"},
		{&Error[tagA]{Op: "close", Name: "x1"}, "a: close x1"},
		{&Error[tagA]{Op: "parse", Name: "x 1"}, `a: parse "x 1"`},
		{&Error[tagA]{Op: "parse", Name: "\x7f"}, `a: parse "\x7f"`},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

// Two instantiations are two types: errors.As for one does not match the
// other, which is what keeps tun's and utun's OpError apart.
func TestDistinctTypes(t *testing.T) {
	var err error = &Error[tagA]{Op: "x", Err: io.EOF}
	var a *Error[tagA]
	var b *Error[tagB]
	if !errors.As(err, &a) || a.Op != "x" {
		t.Fatal("errors.As to its own instantiation failed")
	}
	if errors.As(err, &b) {
		t.Fatal("errors.As matched another package's instantiation")
	}
	if !errors.Is(err, io.EOF) {
		t.Fatal("Unwrap does not reach the cause")
	}
}
