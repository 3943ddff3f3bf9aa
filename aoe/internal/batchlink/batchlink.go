// Package batchlink gives an in-memory switch port the batch abilities of
// an AF_PACKET link (proto.BatchReader and proto.BatchWriter), so tests run
// the batched code paths of the AoE target and initiator without root.
package batchlink

import (
	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/proto/linktest"
)

// Link is a switch port that also reads and writes in batches.
type Link struct {
	*linktest.Link
}

// New wraps a switch port.
func New(l *linktest.Link) *Link { return &Link{Link: l} }

var (
	_ proto.Link        = (*Link)(nil)
	_ proto.BatchReader = (*Link)(nil)
	_ proto.BatchWriter = (*Link)(nil)
)

// ReadBatch blocks for the first frame like ReadFrom, then takes the frames
// already queued, up to len(frames). Each frame is read into its whole
// buffer (Payload up to its capacity), as AF_PACKET links do.
func (l *Link) ReadBatch(frames []proto.Frame) (int, error) {
	if len(frames) == 0 {
		return 0, nil
	}
	n, src, dst, err := l.ReadFrom(frames[0].Payload[:cap(frames[0].Payload)])
	if err != nil {
		return 0, err
	}
	frames[0].Payload, frames[0].Src, frames[0].Dst = frames[0].Payload[:n], src, dst
	for i := 1; i < len(frames); i++ {
		n, src, dst, ok := l.TryReadFrom(frames[i].Payload[:cap(frames[i].Payload)])
		if !ok {
			return i, nil
		}
		frames[i].Payload, frames[i].Src, frames[i].Dst = frames[i].Payload[:n], src, dst
	}
	return len(frames), nil
}

// WriteBatch writes every payload to dst.
func (l *Link) WriteBatch(payloads [][]byte, dst proto.MAC) error {
	for _, p := range payloads {
		if err := l.WriteTo(p, dst); err != nil {
			return err
		}
	}
	return nil
}
