package broker_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// A flood of refused connections from one uid writes its first refusal in
// full and then one summary line with the count, not one line each.
func TestRefusalFloodSummarised(t *testing.T) {
	const n = 300
	ts := startServer(t, nil)
	c := ts.startChild(t, asOutsider, "flood", fmt.Sprintf("TUNDRA_FLOOD=%d", n))
	if open := c.next(t); open.Event != "open" || len(open.Counts) != 0 {
		t.Fatalf("flood: %+v", open)
	}
	answers := c.next(t)
	if answers.Counts["unauthorized"] != n {
		t.Fatalf("answers %v, want %d unauthorized", answers.Counts, n)
	}
	c.stop(10 * time.Second)
	ts.rootCreate(t, "fd00:e::1/64") // others are still logged as usual
	ts.stop()                        // ends the window: the summary is written

	var full []map[string]string
	for _, a := range ts.log.audits() {
		if a["uid"] == fmt.Sprint(outsiderUID) {
			full = append(full, a)
		}
	}
	if len(full) != 1 || full[0]["result"] != "refused" || !strings.Contains(full[0]["reason"], fmt.Sprintf("uid %d is neither root nor a member", outsiderUID)) {
		t.Errorf("full audit records of uid %d: %v, want exactly the first refusal", outsiderUID, full)
	}
	sum := ts.log.waitRecord(t, func(m map[string]string) bool { return m["msg"] == "refusals summarised" })
	want := fmt.Sprintf("%d more refused (unauthorized) from uid %d in the last 1m0s", n-1, outsiderUID)
	if sum["summary"] != want || sum["count"] != fmt.Sprint(n-1) || sum["uid"] != fmt.Sprint(outsiderUID) {
		t.Errorf("summary %v, want %q", sum, want)
	}
	created := 0
	for _, a := range ts.log.audits() {
		if a["result"] == "created" {
			created++
		}
	}
	if created != 1 {
		t.Errorf("%d created records, want the root client's one", created)
	}
}
