package linktest

import (
	"encoding/binary"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mvstack/mvstack/proto"
)

func TestPromiscuousLinkSeesOthersUnicast(t *testing.T) {
	s := newSwitch(t, Config{})
	a, b, c := s.Link(macA, proto.EtherTypeControl), s.Link(macB, proto.EtherTypeControl), s.Link(macC, proto.EtherTypeControl)
	c2 := s.Link(macC, proto.EtherTypeControl) // same station, not promiscuous
	c.SetPromiscuous(true)
	a.WriteTo([]byte("secret"), macB)
	recv(t, b)
	if got, src, dst := recv(t, c); text(got) != "secret" || src != macA || dst != macB {
		t.Fatalf("sniffer got %q %v->%v", got, src, dst)
	}
	empty(t, c2)
	c.WriteTo([]byte("replayed"), macB) // its own frames do not come back
	recv(t, b)
	empty(t, c)
	c.SetPromiscuous(false)
	a.WriteTo([]byte("secret"), macB)
	recv(t, b)
	empty(t, c)
}

func TestClosedStationIsForgotten(t *testing.T) {
	s := newSwitch(t, Config{})
	a, b := s.Link(macA, proto.EtherTypeAoE), s.Link(macB, proto.EtherTypeAoE)
	a.WriteTo([]byte("hi"), proto.Broadcast)
	b.WriteTo([]byte("hi"), macA) // both learned now
	a.WriteTo([]byte("hi"), macB)
	if st := s.Stats(); st.Flooded != 0 {
		t.Fatalf("Flooded = %d between learned stations, want 0", st.Flooded)
	}
	b.Close()
	a.WriteTo([]byte("anyone?"), macB)
	if st := s.Stats(); st.Flooded != 1 {
		t.Fatalf("Flooded = %d, want 1: a closed station's address is unlearned", st.Flooded)
	}
}

// Concurrent writers, readers and faults with delays: every frame sent is
// accounted for exactly once, and the race detector finds nothing.
func TestConcurrentTrafficIsAccountedFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const stations, perWriter = 4, 3000
		s := NewSwitch(Config{QueueLen: 64, Hook: Faults{
			Loss: 0.05, Duplicate: 0.05, Reorder: 0.05, Jitter: time.Millisecond, Seed: 3,
		}.Hook()})
		defer s.Close()
		var links []*Link
		for i := range stations {
			links = append(links, s.Link(proto.MAC{0x02, 0, 0, 0, 1, byte(i)}, proto.EtherTypeControl))
		}
		var readers, writers sync.WaitGroup
		received := make([]int, stations)
		for i, l := range links {
			readers.Go(func() {
				buf := make([]byte, 100)
				for {
					if _, _, _, err := l.ReadFrom(buf); err != nil {
						return
					}
					received[i]++
				}
			})
			writers.Go(func() {
				p := make([]byte, 8)
				for n := range perWriter {
					binary.BigEndian.PutUint64(p, uint64(n))
					dst := links[(i+1+n%(stations-1))%stations].Addr()
					if n%10 == 0 {
						dst = proto.Broadcast
					}
					if err := l.WriteTo(p, dst); err != nil {
						t.Error(err)
						return
					}
					if n%100 == 0 {
						time.Sleep(time.Millisecond) // let readers drain now and then
					}
				}
			})
		}
		writers.Wait()
		time.Sleep(time.Second) // every delayed copy has landed
		synctest.Wait()         // and the readers have read everything
		st := s.Stats()
		total := 0
		for _, n := range received {
			total += n
		}
		// Copies offered to receivers: one per unicast, stations-1 per broadcast.
		broadcasts := stations * perWriter / 10
		offered := uint64(stations*perWriter-broadcasts) + uint64(broadcasts*(stations-1))
		if st.Sent != stations*perWriter {
			t.Errorf("Sent = %d, want %d", st.Sent, stations*perWriter)
		}
		if in, out := offered+st.Duplicated, st.Delivered+st.DroppedHook+st.DroppedQueueFull; in != out {
			t.Errorf("stats %+v: %d copies offered and duplicated, %d delivered or dropped", st, in, out)
		}
		if uint64(total) != st.Delivered {
			t.Errorf("readers got %d frames, switch delivered %d", total, st.Delivered)
		}
		for _, l := range links {
			l.Close()
		}
		readers.Wait()
	})
}

func TestSeveralReadersShareALinkWithoutLosingFrames(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewSwitch(Config{})
		defer s.Close()
		a, b := s.Link(macA, proto.EtherTypeAoE), s.Link(macB, proto.EtherTypeAoE)
		const readers, frames = 3, 300
		got := make(chan uint16, frames)
		var wg sync.WaitGroup
		for range readers {
			wg.Go(func() {
				buf := make([]byte, 2)
				for {
					if _, _, _, err := b.ReadFrom(buf); err != nil {
						return
					}
					got <- binary.BigEndian.Uint16(buf)
				}
			})
		}
		synctest.Wait()
		for i := range frames {
			a.WriteTo(binary.BigEndian.AppendUint16(nil, uint16(i)), macB)
			if i%7 == 0 {
				synctest.Wait()
			}
		}
		seen := make(map[uint16]bool)
		for range frames {
			seen[<-got] = true // blocks forever (a synctest deadlock) if a wakeup was lost
		}
		if len(seen) != frames {
			t.Fatalf("readers got %d distinct frames, want %d", len(seen), frames)
		}
		b.Close()
		wg.Wait()
	})
}
