package perfc_test

import (
	"testing"

	"github.com/mvstack/mvstack/perfc/perfcbench"
)

// BenchmarkPerfc runs the cases bench/perfc prints, anchors included:
// go test -bench . ./perfc
func BenchmarkPerfc(b *testing.B) {
	for _, c := range perfcbench.Cases() {
		b.Run(c.Name, c.F)
	}
}
