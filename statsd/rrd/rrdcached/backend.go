package rrdcached

import (
	"context"
	"fmt"
	"sync"

	"github.com/mvstack/mvstack/statsd/rrd"
)

// Backend buffers series updates and hands them to rrdcached in one BATCH
// per Commit, so rrdcached writes real .rrd files. Names are file names
// as rrdcached sees them (relative to its -b directory). Safe for
// concurrent use.
type Backend struct {
	c    *Client
	mu   sync.Mutex
	cmds []string
}

var _ rrd.Backend = (*Backend)(nil)
var _ rrd.Backend = (*rrd.Store)(nil)

// NewBackend uses c for its commands.
func NewBackend(c *Client) *Backend { return &Backend{c: c} }

// Create creates the file through rrdcached (replacing nothing).
func (b *Backend) Create(name string, spec rrd.Spec, start rrd.Time) error {
	return b.c.Create(context.Background(), name, spec, start.Sec, true)
}

// Update queues one update for the next Commit.
func (b *Backend) Update(name string, t rrd.Time, vals ...rrd.Value) error {
	b.mu.Lock()
	b.cmds = append(b.cmds, "UPDATE "+name+" "+FormatUpdate(t, vals))
	b.mu.Unlock()
	return nil
}

// Commit sends the queued updates in one BATCH. rrdcached accepts them
// into its cache and journal; it writes them to the files on its own
// schedule (Flush or FlushAll make it hurry).
func (b *Backend) Commit(ctx context.Context) error {
	b.mu.Lock()
	cmds := b.cmds
	b.cmds = nil
	b.mu.Unlock()
	if len(cmds) == 0 {
		return nil
	}
	errs, err := b.c.Batch(ctx, cmds)
	if err != nil {
		return err
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %d of %d updates refused, first: command %d: %s", ErrServer, len(errs), len(cmds), errs[0].Index, errs[0].Message)
	}
	return nil
}

// Close closes the client.
func (b *Backend) Close() error { return b.c.Close() }
