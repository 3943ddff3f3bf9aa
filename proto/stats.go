package proto

import "sync/atomic"

// DropReason says why a received frame was dropped.
type DropReason int

// Reasons a received frame is dropped. Frames dropped for any of them never
// reach a handler.
const (
	DropShort       DropReason = iota // shorter than its header and tag
	DropBadHeader                     // unknown version, type or flags
	DropAuth                          // failed authentication: wrong key, unknown key id, flipped bits
	DropReplay                        // a frame counter seen before, or too old
	DropStaleEpoch                    // names an epoch of ours that is not the current one
	DropStaleStream                   // a segment of a stream the sender has replaced
	DropMalformed                     // authentic but impossible fields
	DropWindow                        // beyond the receive window
	DropTooLarge                      // part of a message over MaxMessage
	DropLoop                          // our own source address
	DropNotForUs                      // unicast to another address (promiscuous link)
	numDropReasons
)

var dropNames = [numDropReasons]string{
	"short", "bad_header", "auth", "replay", "stale_epoch", "stale_stream",
	"malformed", "window", "too_large", "loop", "not_for_us",
}

func (r DropReason) String() string {
	if r >= 0 && r < numDropReasons {
		return dropNames[r]
	}
	return "unknown"
}

// DropReasons lists every reason, for exporting counters.
func DropReasons() []DropReason {
	out := make([]DropReason, numDropReasons)
	for i := range out {
		out[i] = DropReason(i)
	}
	return out
}

type counters struct {
	framesIn, framesOut, sendErrors atomic.Uint64
	drops                           [numDropReasons]atomic.Uint64
	duplicates                      atomic.Uint64
	retransmits, fastRetransmits    atomic.Uint64
	timeouts, tailProbes            atomic.Uint64
	peersDead, peerRestarts         atomic.Uint64
	resetsSent                      atomic.Uint64
	refusedSent, refusedReceived    atomic.Uint64
	messagesIn, messagesOut         atomic.Uint64
	callsOK, callsFailed            atomic.Uint64
}

// Stats is a snapshot of an endpoint's counters.
type Stats struct {
	FramesIn, FramesOut, SendErrors uint64
	Drops                           [numDropReasons]uint64
	Duplicates                      uint64 // segments received twice (not a drop: acked again)
	Retransmits                     uint64 // segments sent again, fast retransmits included
	FastRetransmits                 uint64 // segments sent again because later ones were acked
	Timeouts                        uint64 // retransmission timer expiries
	TailProbes                      uint64 // last segments sent again to draw an ack (RFC 8985 §7)
	PeersDead                       uint64
	PeerRestarts                    uint64
	ResetsSent                      uint64
	RefusedSent, RefusedReceived    uint64
	MessagesIn, MessagesOut         uint64
	CallsOK, CallsFailed            uint64
}

// Dropped returns the count of frames dropped for r.
func (s Stats) Dropped(r DropReason) uint64 { return s.Drops[r] }

// TotalDropped is the count of frames dropped for any reason.
func (s Stats) TotalDropped() uint64 {
	var n uint64
	for _, d := range s.Drops {
		n += d
	}
	return n
}

// Stats returns a snapshot of the endpoint's counters.
func (e *Endpoint) Stats() Stats {
	c := &e.stats
	s := Stats{
		FramesIn: c.framesIn.Load(), FramesOut: c.framesOut.Load(), SendErrors: c.sendErrors.Load(),
		Duplicates: c.duplicates.Load(), Retransmits: c.retransmits.Load(),
		FastRetransmits: c.fastRetransmits.Load(), Timeouts: c.timeouts.Load(), TailProbes: c.tailProbes.Load(),
		PeersDead: c.peersDead.Load(), PeerRestarts: c.peerRestarts.Load(),
		ResetsSent: c.resetsSent.Load(), RefusedSent: c.refusedSent.Load(),
		RefusedReceived: c.refusedReceived.Load(), MessagesIn: c.messagesIn.Load(),
		MessagesOut: c.messagesOut.Load(), CallsOK: c.callsOK.Load(), CallsFailed: c.callsFailed.Load(),
	}
	for i := range c.drops {
		s.Drops[i] = c.drops[i].Load()
	}
	return s
}
