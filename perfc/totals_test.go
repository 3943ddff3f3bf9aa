package perfc

import "testing"

func TestTotalsSourceResetsItsViewNotTheOwnersTotals(t *testing.T) {
	owner := []uint64{10, 3}
	s := NewTotalsSource([]Total{{"a.frames", "frames", "A"}, {"a.drops", "frames", "B"}},
		func(totals []uint64) { copy(totals, owner) })
	got := s.Read(nil, nil)
	if got[0].Value != 10 || got[1].Value != 3 || got[0].Unit != "frames" || got[1].Desc != "B" {
		t.Fatalf("first read: %+v", got)
	}
	// A reset of one name returns its value before the reset, then counts from zero.
	got = s.Read(nil, func(name string) bool { return name == "a.frames" })
	if got[0].Value != 10 {
		t.Fatalf("reset read gave %d, want the value before the reset, 10", got[0].Value)
	}
	owner[0], owner[1] = 14, 5
	got = s.Read(nil, nil)
	if got[0].Value != 4 || got[1].Value != 5 {
		t.Fatalf("after the reset: %d and %d, want 4 (since the reset) and 5 (never reset)", got[0].Value, got[1].Value)
	}
	if owner[0] != 14 {
		t.Fatal("the owner's total changed")
	}
}
