package netns

import (
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// live is the set of labs alive in this process. It is process-wide
// because signals are: when the test process is interrupted, t.Cleanup
// never runs, so a signal handler removes every lab before the process
// dies. The handler is installed while at least one lab exists.
var live = &registry{labs: make(map[*Lab]struct{})}

// interrupts are the signals after which the harness removes its labs and
// then lets the signal take its default course. A signal the process
// ignores (nohup, or started in the background by a shell) is left alone:
// it would not end the process, so t.Cleanup still runs.
func interrupts() []os.Signal {
	var sigs []os.Signal
	for _, s := range []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
		if !signal.Ignored(s) {
			sigs = append(sigs, s)
		}
	}
	return sigs
}

type registry struct {
	mu   sync.Mutex
	labs map[*Lab]struct{}
	sigs chan os.Signal // non-nil while the handler is installed
	stop chan struct{}
}

func (r *registry) add(l *Lab) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.labs[l] = struct{}{}
	if r.sigs == nil {
		r.sigs = make(chan os.Signal, 1)
		r.stop = make(chan struct{})
		if sigs := interrupts(); len(sigs) > 0 {
			signal.Notify(r.sigs, sigs...)
		}
		go r.watch(r.sigs, r.stop)
	}
}

func (r *registry) remove(l *Lab) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.labs, l)
	if len(r.labs) == 0 && r.sigs != nil {
		signal.Stop(r.sigs)
		close(r.stop)
		r.sigs, r.stop = nil, nil
	}
}

// watch waits for an interrupt, removes every live lab and re-raises the
// signal with its default action, so the process still dies of it.
func (r *registry) watch(sigs chan os.Signal, stop chan struct{}) {
	select {
	case <-stop:
		return
	case sig := <-sigs:
		r.mu.Lock()
		labs := make([]*Lab, 0, len(r.labs))
		for l := range r.labs {
			labs = append(labs, l)
		}
		r.mu.Unlock()
		fmt.Fprintf(os.Stderr, "netns: %v: removing %d lab(s)\n", sig, len(labs))
		for _, l := range labs {
			if err := l.destroy(); err != nil {
				fmt.Fprintf(os.Stderr, "netns: %v\n", err)
			}
		}
		signal.Reset(sig)
		if s, ok := sig.(syscall.Signal); ok {
			_ = syscall.Kill(os.Getpid(), s)
		}
	}
}
