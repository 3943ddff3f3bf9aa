package perfc

import (
	"strconv"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFamiliesMakeOneMetricPerKey(t *testing.T) {
	s := newTestSet(t, 2)
	calls := s.CounterFamily("proto.rpc.calls", "calls", "RPCs made, per method")
	lat := s.HistogramFamily("proto.rpc.latency", "ns", "RPC round trip, per method", nil)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				calls.With("vm_start").Inc()
				calls.With("perfc_dump").Inc()
				lat.With("vm_start").Observe(30_000)
			}
		})
	}
	wg.Wait()
	calls.With("VMStart!").Inc() // not a segment: counted as other

	var got []string
	for _, m := range s.Dump(Query{}).Metrics {
		got = append(got, m.Name+"="+itoa(m.Value))
	}
	want := []string{"proto.rpc.calls.other=1", "proto.rpc.calls.perfc_dump=400", "proto.rpc.calls.vm_start=400", "proto.rpc.latency.vm_start=400"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if calls.With("vm_start") != s.Counter("proto.rpc.calls.vm_start", "calls", "RPCs made, per method") {
		t.Error("the family and the set hold different counters for one name")
	}
	var nilSet *Set
	nilSet.CounterFamily("a", "b", "c").With("x").Inc()
	mustPanic(t, ErrInvalid, func() { s.CounterFamily("Bad", "calls", "d") })
}

func itoa(v int64) string {
	return strconv.FormatInt(v, 10)
}
