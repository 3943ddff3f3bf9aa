package perfcrpc

import (
	"github.com/mvstack/mvstack/perfc"
	"github.com/mvstack/mvstack/proto"
)

// StatsReader is what has protocol counters: a *proto.Endpoint.
type StatsReader interface {
	Stats() proto.Stats
}

var _ StatsReader = (*proto.Endpoint)(nil)

// AttachStats exports ep's protocol counters (proto.Endpoint.Stats) into
// set as counters named as docs/perfc.md proposes: proto.frames_in.control,
// proto.drops.<reason>, proto.retransmits, proto.messages_in,
// proto.rpc.calls and the others statDefs lists. They are read when a
// dump is taken and cost nothing on the protocol's hot path; a reset
// zeroes them (the endpoint's own totals are not touched: the source keeps
// a baseline). detach removes them from the set.
func AttachStats(set *perfc.Set, ep StatsReader) (detach func(), err error) {
	return set.Attach(NewStatsSource(ep))
}

// NewStatsSource returns a perfc.Source over ep's counters: each value is
// the endpoint's total less the total at the last reset of that name.
func NewStatsSource(ep StatsReader) *perfc.TotalsSource {
	defs := make([]perfc.Total, len(statDefs))
	for i, d := range statDefs {
		defs[i] = perfc.Total{Name: d.name, Unit: d.unit, Desc: d.desc}
	}
	return perfc.NewTotalsSource(defs, func(totals []uint64) {
		st := ep.Stats()
		for i, d := range statDefs {
			totals[i] = d.value(&st)
		}
	})
}

type statDef struct {
	name, unit, desc string
	value            func(*proto.Stats) uint64
}

var dropDescs = map[proto.DropReason]string{
	proto.DropShort:       "Control frames dropped: shorter than a header and tag",
	proto.DropBadHeader:   "Control frames dropped: unknown version, type or flags",
	proto.DropAuth:        "Control frames dropped: authentication failed (no or another cluster key, altered bits)",
	proto.DropReplay:      "Control frames dropped: a frame counter seen before, or outside the replay window",
	proto.DropStaleEpoch:  "Control frames dropped: naming a previous session epoch of this node",
	proto.DropStaleStream: "Control frames dropped: a segment of a stream the sender has replaced",
	proto.DropMalformed:   "Control frames dropped: authentic but impossible fields",
	proto.DropWindow:      "Control frames dropped: beyond the receive window",
	proto.DropTooLarge:    "Control frames dropped: part of a message over the size limit",
	proto.DropLoop:        "Control frames dropped: carrying this node's own source address",
	proto.DropNotForUs:    "Control frames dropped: unicast to another address",
}

// statDefs lists the exported counters in a fixed order.
var statDefs = func() []statDef {
	defs := []statDef{
		{"proto.frames_in.control", "frames", "Control frames received, before authentication", func(s *proto.Stats) uint64 { return s.FramesIn }},
		{"proto.frames_out.control", "frames", "Control frames sent, retransmissions included", func(s *proto.Stats) uint64 { return s.FramesOut }},
		{"proto.send_errors", "frames", "Control frames the link failed to send", func(s *proto.Stats) uint64 { return s.SendErrors }},
		{"proto.duplicates", "segments", "Data segments received twice (acknowledged again, not a drop)", func(s *proto.Stats) uint64 { return s.Duplicates }},
		{"proto.retransmits", "segments", "Data segments sent again, fast retransmits included", func(s *proto.Stats) uint64 { return s.Retransmits }},
		{"proto.retransmits.fast", "segments", "Data segments sent again because later ones were acknowledged", func(s *proto.Stats) uint64 { return s.FastRetransmits }},
		{"proto.rto.timeouts", "timeouts", "Retransmission timer expiries", func(s *proto.Stats) uint64 { return s.Timeouts }},
		{"proto.tail_probes", "segments", "Last segments sent again to draw an acknowledgement (RFC 8985 tail loss probe)", func(s *proto.Stats) uint64 { return s.TailProbes }},
		{"proto.peers.dead", "peers", "Peers declared dead after the tolerance of silence", func(s *proto.Stats) uint64 { return s.PeersDead }},
		{"proto.sessions.restarts", "sessions", "Peer restarts detected (a new session epoch)", func(s *proto.Stats) uint64 { return s.PeerRestarts }},
		{"proto.resets.sent", "frames", "RESET frames sent to peers naming an old epoch of this node", func(s *proto.Stats) uint64 { return s.ResetsSent }},
		{"proto.auth.refused", "frames", "REFUSED frames received: a peer could not authenticate our frames", func(s *proto.Stats) uint64 { return s.RefusedReceived }},
		{"proto.auth.refused_sent", "frames", "REFUSED frames sent to hosts whose frames failed authentication", func(s *proto.Stats) uint64 { return s.RefusedSent }},
		{"proto.messages_in", "messages", "Messages received whole: requests, one-way messages and responses to our calls", func(s *proto.Stats) uint64 { return s.MessagesIn }},
		{"proto.messages_out", "messages", "Messages queued to peers: requests, responses and one-way messages", func(s *proto.Stats) uint64 { return s.MessagesOut }},
		{"proto.rpc.calls", "calls", "RPCs this node made, answered or failed", func(s *proto.Stats) uint64 { return s.CallsOK + s.CallsFailed }},
		{"proto.rpc.errors", "calls", "RPCs this node made that failed (dead or restarted peer, deadline)", func(s *proto.Stats) uint64 { return s.CallsFailed }},
	}
	for _, r := range proto.DropReasons() {
		desc := dropDescs[r]
		if desc == "" {
			desc = "Control frames dropped: " + r.String()
		}
		defs = append(defs, statDef{"proto.drops." + r.String(), "frames", desc, func(s *proto.Stats) uint64 { return s.Dropped(r) }})
	}
	return defs
}()
