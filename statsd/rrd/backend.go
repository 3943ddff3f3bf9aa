package rrd

import "context"

// Backend is where the aggregator sends series updates: a Store (our
// files) or rrdcached (package rrdcached, real .rrd files).
type Backend interface {
	// Create creates a series file.
	Create(name string, spec Spec, start Time) error
	// Update applies or queues one update.
	Update(name string, t Time, vals ...Value) error
	// Commit makes the updates so far durable (Store) or hands them over
	// (rrdcached).
	Commit(ctx context.Context) error
	Close() error
}
