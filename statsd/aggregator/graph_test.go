package aggregator_test

import (
	"bytes"
	"image/png"
	"strings"
	"testing"

	"github.com/mvstack/mvstack/statsd/aggregator"
)

// A window with no known value, or a single one, still draws a graph of
// the size asked (an operator looking before the first update).
func TestGraphWithoutData(t *testing.T) {
	one := 5.0
	for _, rows := range [][][]*float64{
		nil,
		{{ptr(1010), nil}, {ptr(1020), nil}},
		{{ptr(1010), &one}},
	} {
		fr := &aggregator.FetchResponse{Entity: "0000abcd/host", CF: "AVERAGE", Start: 1000, End: 1020, Step: 10, DS: []string{"load1"}, Rows: rows}
		g, err := aggregator.Graph(fr, "png", 320, 100)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if _, err := g.WriteTo(&b); err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(&b)
		if err != nil {
			t.Fatal(err)
		}
		if r := img.Bounds(); r.Dx() != 320 || r.Dy() != 100 {
			t.Errorf("%d rows: %dx%d, want 320x100", len(rows), r.Dx(), r.Dy())
		}
		g, _ = aggregator.Graph(fr, "svg", 320, 100)
		b.Reset()
		g.WriteTo(&b)
		if !strings.Contains(b.String(), `<svg width="320px" height="100px"`) {
			t.Errorf("svg: %.300s", b.String())
		}
	}
	if _, err := aggregator.Graph(&aggregator.FetchResponse{}, "gif", 320, 100); err == nil {
		t.Errorf("gif accepted")
	}
}

func ptr(v float64) *float64 { return &v }
