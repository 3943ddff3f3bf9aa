package linktest

import (
	"time"

	"github.com/mvstack/mvstack/proto"
)

// Frame is one copy of an Ethernet frame on its way through the switch to
// one receiving station.
type Frame struct {
	Src, Dst  proto.MAC
	EtherType proto.EtherType
	// To is the address of the station this copy is going to. It equals
	// Dst for unicast; for broadcast and multicast the hook sees one copy
	// per receiving station.
	To proto.MAC
	// Payload is the frame's payload. It is shared with the other copies
	// of the frame: a hook must not modify it (return a new one in
	// [Verdict].Payload instead).
	Payload []byte
}

// Verdict is a hook's decision about one copy of a frame.
type Verdict struct {
	// Copies is how many copies the station receives: 0 drops the frame,
	// 1 delivers it, more duplicate it.
	Copies int
	// Delay[i] is how long copy i stays in flight; copies without an entry
	// arrive at once. Different delays reorder frames.
	Delay []time.Duration
	// Payload, when not nil, is delivered instead of the frame's payload
	// (corrupted or truncated frames). The switch keeps it; the hook must
	// not reuse it.
	Payload []byte
}

// Deliver is the verdict that delivers one copy at once.
func Deliver() Verdict { return Verdict{Copies: 1} }

// Drop is the verdict that drops the frame.
func Drop() Verdict { return Verdict{} }

// delay is how long copy i stays in flight.
func (v Verdict) delay(i int) time.Duration {
	if i < len(v.Delay) {
		return v.Delay[i]
	}
	return 0
}

// Hook decides the fate of every copy of every frame that crosses the switch.
// It is called from the writer's goroutine, possibly by several writers at
// once, and must be safe for that. A nil Hook delivers every frame once, at
// once.
type Hook func(f Frame) Verdict

// Chain passes each frame through the hooks in order: every copy one hook
// lets through goes through the next one on its own, so drops win, copies
// multiply and delays add up. A replaced payload is what later hooks see.
// Nil hooks are skipped.
func Chain(hooks ...Hook) Hook {
	var hs []Hook
	for _, h := range hooks {
		if h != nil {
			hs = append(hs, h)
		}
	}
	return func(f Frame) Verdict {
		out := Deliver()
		for _, h := range hs {
			g := f
			if out.Payload != nil {
				g.Payload = out.Payload
			}
			next := Verdict{Payload: out.Payload}
			for i := range out.Copies {
				v := h(g)
				if v.Payload != nil {
					next.Payload = v.Payload
				}
				for j := range v.Copies {
					if d := out.delay(i) + v.delay(j); d != 0 {
						for len(next.Delay) < next.Copies {
							next.Delay = append(next.Delay, 0)
						}
						next.Delay = append(next.Delay, d)
					}
					next.Copies++
				}
			}
			if next.Copies <= 0 {
				return Drop()
			}
			out = next
		}
		return out
	}
}

// Partition returns a hook that drops every frame between stations in
// different groups, broadcast included, like pulled cables between racks.
// Stations in no group reach, and are reached by, everyone. Combine it with
// other faults using [Chain]; heal the partition with [Switch.SetHook].
func Partition(groups ...[]proto.MAC) Hook {
	group := make(map[proto.MAC]int)
	for i, g := range groups {
		for _, m := range g {
			group[m] = i + 1
		}
	}
	return func(f Frame) Verdict {
		a, b := group[f.Src], group[f.To]
		if a != 0 && b != 0 && a != b {
			return Drop()
		}
		return Deliver()
	}
}
