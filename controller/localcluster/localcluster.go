// Package localcluster starts real mvcontroller processes on 127.0.0.1
// (TCP raft, boltdb in a directory) for the integration test and the
// benchmark: start, kill -9, restart, find the leader.
package localcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mvstack/mvstack/controller/client"
	"github.com/mvstack/mvstack/controller/rest"
)

// Config says what to start.
type Config struct {
	Bin       string   // the mvcontroller binary
	Dir       string   // data directories, logs and the admin token go here
	Replicas  int      // default 3
	ExtraArgs []string // appended to every serve command, e.g. timer flags
}

type proc struct {
	id   string
	args []string
	http string
	cmd  *exec.Cmd
	done chan struct{}
}

// Cluster is a set of mvcontroller processes.
type Cluster struct {
	cfg     Config
	procs   []*proc
	tokFile string
	Token   string // the admin token
}

// Build compiles the mvcontroller package pkg (a path relative to the
// current directory, e.g. "./cmd/mvcontroller") into out.
func Build(ctx context.Context, pkg, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("localcluster: go build: %w\n%s", err, b)
	}
	return nil
}

func freePorts(n int) ([]string, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var addrs []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}

// Start starts every replica, bootstrapped together.
func Start(cfg Config) (*Cluster, error) {
	if cfg.Replicas == 0 {
		cfg.Replicas = 3
	}
	tok, _, _ := rest.NewToken()
	tokFile := filepath.Join(cfg.Dir, "admin.token")
	if err := os.WriteFile(tokFile, []byte(tok+"\n"), 0o600); err != nil {
		return nil, err
	}
	ports, err := freePorts(2 * cfg.Replicas)
	if err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, Token: tok, tokFile: tokFile}
	var boot []string
	for i := range cfg.Replicas {
		boot = append(boot, "--bootstrap", fmt.Sprintf("c%d=%s/%s", i+1, ports[2*i], ports[2*i+1]))
	}
	for i := range cfg.Replicas {
		args := []string{"serve", "--id", fmt.Sprintf("c%d", i+1),
			"--raft-addr", ports[2*i], "--http-addr", ports[2*i+1],
			"--data-dir", filepath.Join(cfg.Dir, fmt.Sprintf("c%d", i+1)),
			"--admin-token-file", tokFile, "--log-level", "warn"}
		args = append(append(args, boot...), cfg.ExtraArgs...)
		c.procs = append(c.procs, &proc{id: fmt.Sprintf("c%d", i+1), args: args, http: ports[2*i+1]})
		if err := c.Start(i); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// Join starts one more replica that joins through replica via (as a
// non-voter, promoted once caught up) and returns its index and id.
func (c *Cluster) Join(via int) (int, string, error) {
	ports, err := freePorts(2)
	if err != nil {
		return -1, "", err
	}
	i := len(c.procs)
	id := fmt.Sprintf("c%d", i+1)
	args := []string{"serve", "--id", id, "--raft-addr", ports[0], "--http-addr", ports[1],
		"--data-dir", filepath.Join(c.cfg.Dir, id), "--admin-token-file", c.tokFile, "--log-level", "warn",
		"--join", "http://" + c.procs[via].http}
	c.procs = append(c.procs, &proc{id: id, args: append(args, c.cfg.ExtraArgs...), http: ports[1]})
	return i, id, c.Start(i)
}

// ID is replica i's raft id.
func (c *Cluster) ID(i int) string { return c.procs[i].id }

// Start (re)starts replica i with its original arguments.
func (c *Cluster) Start(i int) error {
	p := c.procs[i]
	log, err := os.OpenFile(filepath.Join(c.cfg.Dir, p.id+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.cfg.Bin, p.args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("localcluster: start c%d: %w", i+1, err)
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	go func() { cmd.Wait(); log.Close(); close(done) }()
	return nil
}

// Kill sends SIGKILL (kill -9) to replica i and waits until it is gone.
func (c *Cluster) Kill(i int) {
	p := c.procs[i]
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.cmd = nil
}

// Terminate sends SIGTERM to replica i and returns its exit code once it
// has exited, or an error when ctx ends first.
func (c *Cluster) Terminate(ctx context.Context, i int) (int, error) {
	p := c.procs[i]
	if p.cmd == nil {
		return -1, fmt.Errorf("localcluster: c%d is not running", i+1)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-ctx.Done():
		return -1, ctx.Err()
	}
	code := p.cmd.ProcessState.ExitCode()
	p.cmd = nil
	return code, nil
}

// Running reports whether replica i was started and not killed.
func (c *Cluster) Running(i int) bool { return c.procs[i].cmd != nil }

// Close kills every replica.
func (c *Cluster) Close() {
	for i := range c.procs {
		c.Kill(i)
	}
}

// Len is the number of replicas.
func (c *Cluster) Len() int { return len(c.procs) }

// Client returns an API client of replica i with the admin token.
func (c *Cluster) Client(i int) *client.Client { return client.New(c.procs[i].http, c.Token) }

// Leader polls the running replicas until one reports itself leader, or
// ctx ends.
func (c *Cluster) Leader(ctx context.Context) (int, error) {
	for {
		for i := range c.procs {
			if !c.Running(i) {
				continue
			}
			var cl struct{ Self, Leader string }
			if err := c.Client(i).Do(ctx, "GET", "/api/cluster", nil, &cl); err == nil && cl.Self != "" && cl.Leader == cl.Self {
				return i, nil
			}
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("localcluster: no leader: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond): // polling real processes
		}
	}
}

// ErrNotYet is a transient error for Retry's callers: the condition they
// wait for does not hold yet.
var ErrNotYet = errors.New("localcluster: not yet")

// Retry calls fn until it succeeds, fails with an error other than a 503,
// a 401 (the admin token may not be replicated yet) or a connection error,
// or ctx ends.
func Retry(ctx context.Context, fn func() error) error {
	for {
		err := fn()
		if err == nil || !Transient(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-time.After(5 * time.Millisecond): // retrying a real process
		}
	}
}

// Transient reports whether err is worth retrying: no quorum, a token not
// replicated yet, or a replica that is down.
func Transient(err error) bool {
	if errors.Is(err, ErrNotYet) {
		return true
	}
	var ae *client.Error
	if errors.As(err, &ae) {
		return ae.Status == 503 || ae.Status == 401
	}
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ne) || errors.As(err, &oe)
}
