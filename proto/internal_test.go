package proto

import (
	"testing"
	"time"
)

func TestReplayWindowAcceptsEachCounterOnce(t *testing.T) {
	var w replayWindow
	for _, tc := range []struct {
		c    uint64
		want bool
	}{
		{0, false}, // counters start at 1
		{1, true}, {1, false},
		{5, true}, {3, true}, {3, false}, {2, true},
		{5000, true}, {5000 - replayWindowSize + 1, true}, {5000 - replayWindowSize, false},
		{4999, true}, {4999, false},
		{1 << 40, true}, {5000, false}, {1<<40 - 1, true},
	} {
		if got := w.check(tc.c); got != tc.want {
			t.Fatalf("check(%d) = %v, want %v", tc.c, got, tc.want)
		}
	}
}

func TestRTOFollowsRFC6298WithALANFloor(t *testing.T) {
	e := newRTTEstimator(50*time.Millisecond, 20*time.Millisecond, 500*time.Millisecond)
	if got := e.rto(); got != 50*time.Millisecond {
		t.Fatalf("before any sample RTO = %v, want the initial 50ms", got)
	}
	e.sample(40 * time.Millisecond) // SRTT=40, RTTVAR=20 → 40+80
	if got := e.rto(); got != 120*time.Millisecond {
		t.Fatalf("after one sample RTO = %v, want 120ms", got)
	}
	e.sample(40 * time.Millisecond) // RTTVAR = 3/4·20 + 1/4·0 = 15 → 40+60
	if got := e.rto(); got != 100*time.Millisecond {
		t.Fatalf("after two samples RTO = %v, want 100ms", got)
	}
	for range 50 {
		e.sample(50 * time.Microsecond)
	}
	if got := e.rto(); got != 20*time.Millisecond {
		t.Fatalf("on a fast LAN RTO = %v, want the 20ms floor", got)
	}
	e.timeout()
	e.timeout()
	if got := e.rto(); got != 80*time.Millisecond {
		t.Fatalf("after two timeouts RTO = %v, want 80ms", got)
	}
	for range 10 {
		e.timeout()
	}
	if got := e.rto(); got != 500*time.Millisecond {
		t.Fatalf("backoff RTO = %v, want the 500ms cap", got)
	}
	e.sample(50 * time.Microsecond)
	if got := e.rto(); got != 20*time.Millisecond {
		t.Fatalf("a new sample did not clear the backoff: %v", got)
	}
}
