package broker

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// The first refusal of a uid and status is logged in full, and each of its
// first distinct reasons; repeats are counted into one summary, written
// when the window ends (or at close), after which the next one is logged
// in full again.
func TestRefusalLimiter(t *testing.T) {
	var mu sync.Mutex
	var sums []string
	l := &refusalLimiter{window: time.Hour, summary: func(k refusalKey, n int, last string, _ time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		sums = append(sums, fmt.Sprintf("uid %d %s: %d more, last %q", k.uid, k.status, n, last))
	}}
	busy := refusalKey{uid: 7, hasUID: true, status: StatusBusy}
	if !l.allow(busy, "busy") {
		t.Fatal("the first refusal was held back")
	}
	for i := 0; i < 999; i++ {
		if l.allow(busy, "busy") {
			t.Fatalf("repeat %d logged in full", i)
		}
	}
	other := refusalKey{uid: 8, hasUID: true, status: StatusBusy}
	if !l.allow(other, "busy") {
		t.Fatal("another uid's first refusal was held back")
	}
	bad := refusalKey{uid: 7, hasUID: true, status: StatusBadRequest}
	full := 0
	for i := 0; i < 100; i++ {
		if l.allow(bad, fmt.Sprintf("bad magic %d", i)) {
			full++
		}
	}
	if full != maxDistinctReasons {
		t.Errorf("%d varied reasons logged in full, want %d", full, maxDistinctReasons)
	}
	l.close()
	mu.Lock()
	got := fmt.Sprint(sums)
	mu.Unlock()
	for _, want := range []string{`uid 7 busy: 999 more, last "busy"`, `uid 7 bad request: 84 more, last "bad magic 99"`} {
		if !contains(sums, want) {
			t.Errorf("summaries %s lack %s", got, want)
		}
	}
	if len(sums) != 2 {
		t.Errorf("summaries %s, want two (uid 8 had nothing held back)", got)
	}

	// A short window: the summary comes by itself, then the next refusal
	// is in full again.
	done := make(chan string, 1)
	l = &refusalLimiter{window: 20 * time.Millisecond, summary: func(k refusalKey, n int, _ string, _ time.Duration) {
		done <- fmt.Sprintf("%d more", n)
	}}
	l.allow(busy, "busy")
	l.allow(busy, "busy")
	select {
	case s := <-done:
		if s != "1 more" {
			t.Errorf("summary %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no summary after the window")
	}
	if !l.allow(busy, "busy") {
		t.Error("the first refusal of a new window was held back")
	}
	l.close()
	if !(&refusalLimiter{window: -1}).allow(busy, "busy") {
		t.Error("a negative window held a refusal back")
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
