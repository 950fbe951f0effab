package utun

import (
	"errors"
	"io"
	"testing"
)

func TestOpError(t *testing.T) {
	tests := []struct {
		err  *OpError
		want string
	}{
		{&OpError{Op: "connect", Name: "utun7", Err: io.EOF}, "utun: connect utun7: EOF"},
		{&OpError{Op: "open", Err: io.EOF}, "utun: open: EOF"},
		{&OpError{Op: "close", Name: "utun1"}, "utun: close utun1"},
		{&OpError{Op: "parse name", Name: "utun 1", Err: io.EOF}, `utun: parse name "utun 1": EOF`},
		{&OpError{Op: "x", Name: "ü"}, `utun: x "ü"`},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
	err := error(&OpError{Op: "connect", Err: io.EOF})
	if !errors.Is(err, io.EOF) {
		t.Error("Unwrap does not reach the cause")
	}
}
