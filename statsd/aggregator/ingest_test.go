package aggregator_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/statsd/aggregator"
	"github.com/mvstack/mvstack/statsd/emitter"
	"github.com/mvstack/mvstack/statsd/statframe"
)

// Updates that would go back in time are dropped as stale, records of
// unknown types are skipped and counted, and series beyond the limit are
// refused as overflow, without failing the frames that carry them.
func TestIngestDropsStaleAndOverflow(t *testing.T) {
	keys := keyring(t, 1)
	cfg := smallConfig(t.TempDir())
	cfg.Keys, cfg.MaxSeries = keys, 3
	agg, err := aggregator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer agg.Close()
	src := nodeMAC(0)
	s, _ := proto.NewSealer(keys, emitter.Purpose, src)
	send := func(f statframe.Frame, extra ...byte) bool {
		b, err := f.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if len(extra) > 0 { // one more record, of a type from the future
			b[3]++
			b = append(b, extra...)
		}
		return agg.Ingest(s.Seal(nil, aggMAC, b), src, aggMAC)
	}
	const sec = 1_700_000_000_000_000_000
	numa := func(id uint16) statframe.Record { return &statframe.NUMA{ID: id, MemTotal: 10, MemFree: 5} }
	if !send(statframe.Frame{Time: sec + 10e9, Records: []statframe.Record{numa(0), numa(1)}}, 0xee, 0, 2, 1, 2) {
		t.Fatal("a valid frame was refused")
	}
	// The same time again (a restarted sender with a fresh epoch would do
	// this): stale. An earlier one: stale. A third and fourth series: the
	// third fits, the fourth overflows.
	send(statframe.Frame{Time: sec + 10e9, Records: []statframe.Record{numa(0)}})
	send(statframe.Frame{Time: sec + 5e9, Records: []statframe.Record{numa(1)}})
	send(statframe.Frame{Time: sec + 20e9, Records: []statframe.Record{numa(0), numa(2), numa(3)}})
	if err := agg.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := agg.Stats()
	want := aggregator.Stats{FramesReceived: 4, FramesDropped: map[string]uint64{}, Records: 7, RecordsSkipped: 1,
		UpdatesWritten: 4, UpdatesDropped: map[string]uint64{aggregator.DropStale: 2, aggregator.DropOverflow: 1},
		Commits: 1, Series: 3}
	if diff := cmp.Diff(want, st); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}
