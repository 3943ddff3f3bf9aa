package netns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process is a program started in a host namespace with [Host.Start].
// Its methods are safe for concurrent use.
type Process struct {
	// Name is the program and its host, for messages.
	Name string

	host *Host
	pid  int
	out  *tailBuffer
	done chan struct{}
	err  error // set before done is closed
}

// maxOutput is how much of a process's combined output is kept: the tail,
// which is where a failing daemon says why.
const maxOutput = 1 << 20

// killWait bounds how long Kill waits for a killed process to be reaped.
const killWait = 10 * time.Second

// Start starts bin with args inside the host's namespace, its standard
// output and error captured (see [Process.Output]). The process (its whole
// process group) is killed when t's test ends, and its output is logged if
// the test failed. It fails the test if bin cannot be started. To restart a
// daemon, Kill or Wait for it and call Start again.
func (h *Host) Start(t testing.TB, bin string, args ...string) *Process {
	t.Helper()
	p, err := h.start(bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("output of %s (pid %d, %s):\n%s", p.Name, p.pid, p.exitString(), p.Output())
		}
	})
	return p
}

// StartProcess is [Host.Start] for a program that is not a test: the
// process is killed when the lab closes.
func (h *Host) StartProcess(bin string, args ...string) (*Process, error) {
	return h.start(bin, args...)
}

func (h *Host) start(bin string, args ...string) (*Process, error) {
	p := &Process{
		Name: fmt.Sprintf("%s in %s", bin, h.Name),
		host: h,
		out:  &tailBuffer{max: maxOutput},
		done: make(chan struct{}),
	}
	cmd := h.Command(context.Background(), bin, args...)
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("netns: starting %s: %w", p.Name, err)
	}
	p.pid = cmd.Process.Pid
	l := h.lab
	l.mu.Lock()
	l.procs[p] = struct{}{}
	l.mu.Unlock()
	go func() {
		p.err = cmd.Wait()
		l.mu.Lock()
		delete(l.procs, p)
		l.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process's id (also its process group id).
func (p *Process) Pid() int { return p.pid }

// Output returns what the process has written to standard output and
// error so far (the last MiB of it).
func (p *Process) Output() string { return p.out.String() }

// Wait waits for the process to exit and returns its exit error (nil for
// status 0), or ctx's error if ctx ends first.
func (p *Process) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process (not its children).
func (p *Process) Signal(sig os.Signal) error {
	if p.Exited() {
		return os.ErrProcessDone
	}
	s, ok := sig.(syscall.Signal)
	if !ok {
		return fmt.Errorf("netns: signal %v is not a syscall.Signal", sig)
	}
	return syscall.Kill(p.pid, s)
}

// WaitOutput waits until the process's output contains s (a daemon's
// "ready" line, say) and returns nil; it returns an error with the output
// if the process exits first, or ctx's error if ctx ends first. It wakes on
// every write, without polling.
func (p *Process) WaitOutput(ctx context.Context, s string) error {
	for {
		out, changed := p.out.snapshot()
		if strings.Contains(out, s) {
			return nil
		}
		select {
		case <-changed:
		case <-p.done:
			if out := p.Output(); strings.Contains(out, s) {
				return nil
			}
			return fmt.Errorf("netns: %s exited (%s) before printing %q; output:\n%s", p.Name, p.exitString(), s, p.Output())
		case <-ctx.Done():
			return fmt.Errorf("netns: waiting for %q from %s: %w; output so far:\n%s", s, p.Name, ctx.Err(), p.Output())
		}
	}
}

// Stop asks the process to end with SIGTERM and waits for it; if ctx ends
// first, it kills the process group. It returns the exit error: nil for a
// clean exit, an *exec.ExitError for a process that died of the signal.
func (p *Process) Stop(ctx context.Context) error {
	if err := p.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		p.Kill()
		return fmt.Errorf("netns: %s did not stop after SIGTERM: %w", p.Name, ctx.Err())
	}
}

// Kill sends SIGKILL to the process's group and waits (for up to 10 s)
// until the process has been reaped. Killing an exited process does
// nothing.
func (p *Process) Kill() {
	if p.Exited() {
		return
	}
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(killWait):
	}
}

func (p *Process) exitString() string {
	if !p.Exited() {
		return "running"
	}
	if p.err == nil {
		return "exit status 0"
	}
	return p.err.Error()
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu      sync.Mutex
	max     int
	b       []byte
	dropped int64
	changed chan struct{} // closed and replaced on every write
}

// snapshot returns the content and a channel closed at the next write.
func (b *tailBuffer) snapshot() (string, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed == nil {
		b.changed = make(chan struct{})
	}
	return string(b.b), b.changed
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b = append(b.b, p...)
	// Trim only when twice over, so a chatty process costs an amortised
	// copy per byte, not a full-buffer move per write.
	if over := len(b.b) - b.max; over > b.max {
		b.dropped += int64(over)
		b.b = append(b.b[:0], b.b[over:]...)
	}
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if over := len(b.b) - b.max; over > 0 {
		b.dropped += int64(over)
		b.b = append(b.b[:0], b.b[over:]...)
	}
	if b.dropped > 0 {
		return fmt.Sprintf("[... %d bytes dropped ...]\n%s", b.dropped, b.b)
	}
	return string(b.b)
}
