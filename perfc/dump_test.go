package perfc

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func sampleDump() Dump {
	return Dump{Metrics: []Metric{
		{Name: "aoe.cmd.read", Unit: "commands", Desc: "AoE read commands issued", Value: 12},
		{Name: "aoe.cmd.read.latency", Kind: KindHistogram, Unit: "ns", Desc: "AoE read latency", Value: 3,
			Hist: &HistValue{Bounds: []int64{1000, 2000}, Counts: []int64{1, 1, 1}, Sum: 4500}},
		{Name: "proto.sessions.open", Kind: KindGauge, Unit: "sessions", Desc: "Sessions open", Value: -1},
		{Domain: "dn5", Name: "perf.hw.cycles", Unit: "cycles", Desc: "CPU cycles", State: StateUnsupported},
	}}
}

func TestDumpRoundTripsThroughCBOR(t *testing.T) {
	d := sampleDump()
	b, err := d.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got Dump
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(d, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	j, _ := json.Marshal(d)
	if len(b) >= len(j)/2 {
		t.Errorf("CBOR dump is %d bytes, JSON %d: integer keys should make it well under half", len(b), len(j))
	}
}

func TestDumpCBORBytes(t *testing.T) {
	// One counter: map{1: [map{2: "a.b", 4: "x", 6: 5}]}
	d := Dump{Metrics: []Metric{{Name: "a.b", Unit: "x", Value: 5}}}
	want := []byte{0xa1, 0x01, 0x81, 0xa3, 0x02, 0x63, 'a', '.', 'b', 0x04, 0x61, 'x', 0x06, 0x05}
	got, err := d.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestDumpUnmarshalRejectsBadInput(t *testing.T) {
	good, _ := sampleDump().MarshalBinary()
	for _, tc := range []struct {
		desc string
		in   []byte
		want error
	}{
		{"empty", nil, io.ErrUnexpectedEOF},
		{"truncated", good[:len(good)-3], io.ErrUnexpectedEOF},
		{"unknown kind", []byte{0xa1, 0x01, 0x81, 0xa2, 0x02, 0x61, 'a', 0x03, 0x09}, ErrInvalid},
		{"unknown state", []byte{0xa1, 0x01, 0x81, 0xa2, 0x02, 0x61, 'a', 0x07, 0x09}, ErrInvalid},
		{"histogram without buckets", []byte{0xa1, 0x01, 0x81, 0xa2, 0x02, 0x61, 'a', 0x03, 0x02}, ErrInvalid},
		{"counter with buckets", []byte{0xa1, 0x01, 0x81, 0xa2, 0x02, 0x61, 'a', 0x08, 0xa0}, ErrInvalid},
		{"counts do not match bounds", []byte{0xa1, 0x01, 0x81, 0xa3, 0x02, 0x61, 'a', 0x03, 0x02, 0x08, 0xa2, 0x01, 0x81, 0x01, 0x02, 0x81, 0x01}, ErrInvalid},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var d Dump
			if err := d.UnmarshalBinary(tc.in); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
	var d Dump
	if err := d.UnmarshalBinary([]byte{0x01}); err == nil {
		t.Error("a bare integer decoded as a dump")
	}
}

func FuzzDumpUnmarshalBinary(f *testing.F) {
	good, _ := sampleDump().MarshalBinary()
	f.Add(good)
	f.Add([]byte{0xa1, 0x01, 0x81, 0xa3, 0x02, 0x63, 'a', '.', 'b', 0x04, 0x61, 'x', 0x06, 0x05})
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var d Dump
		if err := d.UnmarshalBinary(b); err != nil {
			return
		}
		again, err := d.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded dump does not encode: %v", err)
		}
		var d2 Dump
		if err := d2.UnmarshalBinary(again); err != nil {
			t.Fatalf("re-encoded dump does not decode: %v", err)
		}
		if diff := cmp.Diff(d, d2, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
		var buf bytes.Buffer
		if err := d.WriteText(&buf); err != nil {
			t.Fatal(err)
		}
		_ = d.Delta(d2)
	})
}

func TestDumpJSONNamesKindsAndStates(t *testing.T) {
	b, err := json.Marshal(Dump{Metrics: []Metric{{Domain: "dn5", Name: "perf.hw.cycles", Unit: "cycles", State: StateUnsupported}}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"metrics":[{"domain":"dn5","name":"perf.hw.cycles","kind":"counter","unit":"cycles","value":0,"state":"unsupported"}]}`
	if string(b) != want {
		t.Errorf("JSON = %s\nwant   %s", b, want)
	}
	var d Dump
	if err := json.Unmarshal(b, &d); err != nil || d.Metrics[0].State != StateUnsupported {
		t.Errorf("JSON back: %+v, %v", d, err)
	}
}

func TestWriteTextShowsUnitsDescriptionsAndUnsupported(t *testing.T) {
	var b strings.Builder
	if err := sampleDump().WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"-    aoe.cmd.read          12             commands                         AoE read commands issued\n" +
		"-    aoe.cmd.read.latency  3              obs  p50≤2µs p99≤2µs mean 1.5µs  AoE read latency\n" +
		"-    proto.sessions.open   -1             sessions                         Sessions open\n" +
		"dn5  perf.hw.cycles        <unsupported>                                   CPU cycles\n"
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestDeltaGivesIncreasesForRates(t *testing.T) {
	prev := sampleDump()
	cur := sampleDump()
	cur.Metrics[0].Value = 20
	cur.Metrics[1] = Metric{Name: "aoe.cmd.read.latency", Kind: KindHistogram, Unit: "ns", Value: 5,
		Hist: &HistValue{Bounds: []int64{1000, 2000}, Counts: []int64{2, 2, 1}, Sum: 7500}}
	cur.Metrics[2].Value = 4
	got := cur.Delta(prev)
	if got.Metrics[0].Value != 8 {
		t.Errorf("counter delta = %d, want 8", got.Metrics[0].Value)
	}
	if diff := cmp.Diff(&HistValue{Bounds: []int64{1000, 2000}, Counts: []int64{1, 1, 0}, Sum: 3000}, got.Metrics[1].Hist); diff != "" || got.Metrics[1].Value != 2 {
		t.Errorf("histogram delta %d (-want +got):\n%s", got.Metrics[1].Value, diff)
	}
	if got.Metrics[2].Value != 4 {
		t.Errorf("gauge = %d, want its level 4", got.Metrics[2].Value)
	}
	if got.Metrics[3].State != StateUnsupported {
		t.Error("unsupported lost its state")
	}
	if cur.Metrics[0].Value != 20 {
		t.Error("Delta changed its receiver")
	}
}
