// Package batchlink gives an in-memory switch port the batch abilities of
// an AF_PACKET link (proto.BatchReader and proto.BatchWriter), so tests run
// the batched code paths of the AoE target and initiator without root.
package batchlink

import (
	"sync"
	"time"

	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/proto/linktest"
)

// Link is a switch port that also reads and writes in batches.
type Link struct {
	*linktest.Link

	mu       sync.Mutex
	deadline time.Time // the caller's read deadline
}

// New wraps a switch port.
func New(l *linktest.Link) *Link { return &Link{Link: l} }

var (
	_ proto.Link        = (*Link)(nil)
	_ proto.BatchReader = (*Link)(nil)
	_ proto.BatchWriter = (*Link)(nil)
)

// SetReadDeadline sets the caller's read deadline.
func (l *Link) SetReadDeadline(t time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.deadline = t
	return l.Link.SetReadDeadline(t)
}

// ReadBatch blocks for the first frame like ReadFrom, then takes the frames
// already queued, up to len(frames). It works inside testing/synctest
// bubbles: the wait for more frames is a read deadline one microsecond
// ahead, after which the caller's deadline is put back.
func (l *Link) ReadBatch(frames []proto.Frame) (int, error) {
	for i := range frames {
		if i > 0 {
			l.mu.Lock()
			_ = l.Link.SetReadDeadline(time.Now().Add(time.Microsecond))
			l.mu.Unlock()
		}
		n, src, dst, err := l.ReadFrom(frames[i].Payload)
		if i > 0 {
			l.mu.Lock()
			_ = l.Link.SetReadDeadline(l.deadline)
			l.mu.Unlock()
		}
		if err != nil {
			if i > 0 && proto.IsTimeout(err) {
				return i, nil
			}
			return i, err
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
