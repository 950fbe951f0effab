//go:build !linux

package nl

import (
	"errors"
	"testing"
)

func TestDialNotSupported(t *testing.T) {
	c, err := Dial()
	if c != nil || !errors.Is(err, ErrNotSupported) {
		t.Fatalf("Dial() = %v, %v; want ErrNotSupported", c, err)
	}
	if ne := asError(t, err); ne.Op != "dial" {
		t.Errorf("Op %q, want dial", ne.Op)
	}
}

func TestWatchLinksNotSupported(t *testing.T) {
	w, err := WatchLinks()
	if w != nil || !errors.Is(err, ErrNotSupported) {
		t.Fatalf("WatchLinks() = %v, %v; want ErrNotSupported", w, err)
	}
	if ne := asError(t, err); ne.Op != "watchlinks" {
		t.Errorf("Op %q, want watchlinks", ne.Op)
	}
}
