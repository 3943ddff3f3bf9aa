package leader

import (
	"context"
	"log/slog"
)

// Source reports this replica's leadership. Implementations must be safe for
// concurrent use.
type Source interface {
	// Leadership reports whether this replica leads now, and in which term.
	Leadership() (leading bool, term uint64)
	// Notify arranges for a value to be sent on ch (without blocking; ch
	// should have a buffer of 1) whenever leadership may have changed. The
	// returned function stops the notifications.
	Notify(ch chan<- struct{}) (stop func())
}

type termKey struct{}

// Term returns the raft term the leader context was started in; commands
// sent to nodes carry it so that nodes refuse commands from older terms.
func Term(ctx context.Context) (uint64, bool) {
	t, ok := ctx.Value(termKey{}).(uint64)
	return t, ok
}

// WithTerm returns ctx carrying term, as Run gives its loops (tests, and
// callers that run a loop body directly).
func WithTerm(ctx context.Context, term uint64) context.Context {
	return context.WithValue(ctx, termKey{}, term)
}

// Loop is a leader-only loop.
type Loop func(ctx context.Context) error

// Run calls loop each time this replica becomes leader, under a context that
// is cancelled when leadership is lost, and returns when ctx is done (after
// the loop has returned). Errors from loop are logged to log (nil discards);
// the loop is started again only after a new leadership is observed.
func Run(ctx context.Context, src Source, name string, log *slog.Logger, loop Loop) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ch := make(chan struct{}, 1)
	stop := src.Notify(ch)
	defer stop()

	var (
		cancel  context.CancelFunc
		done    chan struct{}
		running uint64 // term the current loop runs in; 0 = none
		ran     uint64 // last term a loop was started in
	)
	halt := func() {
		if cancel != nil {
			cancel()
			<-done
			cancel, done, running = nil, nil, 0
		}
	}
	defer halt()
	check := func() {
		leading, term := src.Leadership()
		if running != 0 && (!leading || term != running) {
			log.Info("leadership lost: stopping loop", "loop", name, "term", running)
			halt()
		}
		if done != nil {
			select {
			case <-done: // loop returned by itself
				cancel()
				cancel, done, running = nil, nil, 0
			default:
			}
		}
		if leading && running == 0 && term != ran {
			lctx, c := context.WithCancel(WithTerm(ctx, term))
			cancel, done, running, ran = c, make(chan struct{}), term, term
			log.Info("leading: starting loop", "loop", name, "term", term)
			go func(d chan struct{}) {
				defer close(d)
				if err := loop(lctx); err != nil && lctx.Err() == nil {
					log.Warn("leader loop failed", "loop", name, "term", term, "err", err)
				}
			}(done)
		}
	}
	check()
	for {
		var d chan struct{}
		if done != nil {
			d = done
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		case <-d:
		}
		check()
	}
}
