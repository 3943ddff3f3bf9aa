package target

import (
	"testing"

	"github.com/mvstack/mvstack/aoe/ata"
)

func TestOverlappingWritesRunInArrivalOrder(t *testing.T) {
	var o order
	w1 := job{f: ataReq(ata.CmdWriteSectorsExt, 10, 4, make([]byte, 2048))}
	r1 := job{f: ataReq(ata.CmdReadSectorsExt, 100, 2, nil)}
	w2 := job{f: ataReq(ata.CmdWriteSectorsExt, 12, 1, make([]byte, 512))}
	r2 := job{f: ataReq(ata.CmdReadSectorsExt, 12, 2, nil)}
	r3 := job{f: ataReq(ata.CmdReadSectorsExt, 0, 2, nil)}
	if !o.admit(&w1) || !o.admit(&r1) {
		t.Fatal("non-overlapping requests were held back")
	}
	if o.admit(&w2) {
		t.Fatal("a write overlapping a running write ran at once")
	}
	if o.admit(&r2) {
		t.Fatal("a read overlapping a running write ran at once")
	}
	if !o.admit(&r3) {
		t.Fatal("an unrelated read was held back")
	}
	if got := o.done(&r1); len(got) != 0 {
		t.Fatalf("finishing an unrelated read released %d jobs", len(got))
	}
	got := o.done(&w1)
	if len(got) != 1 || got[0].span.id != w2.span.id {
		t.Fatalf("finishing the first write released %v, want only the second write", got)
	}
	got = o.done(&got[0])
	if len(got) != 1 || got[0].span.id != r2.span.id {
		t.Fatalf("finishing the second write released %v, want the read behind it", got)
	}
}
