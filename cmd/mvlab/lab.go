package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// prefix names everything a lab makes, so 'mvlab down' finds it.
const prefix = "mvlab-"

// lab is a switch namespace holding a bridge and host namespaces cabled to
// it by veth pairs; each host's end is eth0.
type lab struct {
	sw    string
	hosts []host
	procs []*proc
}

// proc is a program a lab started in the background.
type proc struct {
	name string // what it is, for messages: "mvnode on mvlab-node1"
	cmd  *exec.Cmd
	out  *logBuffer
	done chan struct{} // closed when it has exited
	err  error         // how it exited, once done is closed
}

// exited reports whether the program has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill ends the program and whatever it started at once (SIGKILL, as a
// crash would) and waits for it.
func (p *proc) kill() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// waitOutput waits until the program has printed want. It fails if the
// program exits first, ctx ends, or timeout passes.
func (p *proc) waitOutput(ctx context.Context, want string, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if strings.Contains(p.out.String(), want) {
			return nil
		}
		select {
		case <-p.done:
			if strings.Contains(p.out.String(), want) {
				return nil
			}
			return fmt.Errorf("%s exited (%v) before saying %q", p.name, p.err, want)
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return fmt.Errorf("%s did not say %q within %v", p.name, want, timeout)
		case <-tick.C:
		}
	}
}

// logBuffer collects a program's output; it may be read while written.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// tail is the last n lines of the output.
func (b *logBuffer) tail(n int) string {
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d earlier lines)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

type host struct {
	name string // namespace
	mac  string
}

func needRoot() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (CAP_NET_ADMIN for namespaces and veth, CAP_NET_RAW for raw sockets): run it with sudo")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("needs the ip command: apt-get install iproute2")
	}
	return nil
}

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// newLab makes the switch and the named hosts. MACs are fixed so a demo
// reads the same every time: 02:6d:76:00:00:NN (6d:76 is "mv").
func newLab(names []string, mtu int) (*lab, error) {
	l := &lab{sw: prefix + "switch"}
	if err := ipCmd("netns", "add", l.sw); err != nil {
		return nil, err
	}
	steps := [][]string{
		{"-n", l.sw, "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0"},
		{"-n", l.sw, "link", "set", "br0", "mtu", fmt.Sprint(mtu), "up"},
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			l.remove()
			return nil, err
		}
	}
	for i, n := range names {
		h := host{name: prefix + n, mac: fmt.Sprintf("02:6d:76:00:00:%02x", i+1)}
		port := fmt.Sprintf("p%d", i)
		steps := [][]string{
			{"netns", "add", h.name},
			{"-n", l.sw, "link", "add", port, "mtu", fmt.Sprint(mtu), "type", "veth", "peer", "name", "eth0", "netns", h.name},
			{"-n", l.sw, "link", "set", port, "master", "br0", "up"},
			{"-n", h.name, "link", "set", "eth0", "address", h.mac, "mtu", fmt.Sprint(mtu), "up"},
			{"-n", h.name, "link", "set", "lo", "up"},
		}
		for _, s := range steps {
			if err := ipCmd(s...); err != nil {
				l.remove()
				return nil, err
			}
		}
		l.hosts = append(l.hosts, h)
	}
	return l, nil
}

// start runs a program inside a host's namespace in the background, in a
// process group of its own (so an interrupt reaches mvlab, which stops it).
func (l *lab) start(h host, bin string, args ...string) (*proc, error) {
	p := &proc{name: filepath.Base(bin) + " on " + h.name, out: &logBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", h.name, bin}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", p.name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	l.procs = append(l.procs, p)
	return p, nil
}

// run runs a program inside a host's namespace and returns its output;
// env is added to mvlab's environment.
func (l *lab) run(ctx context.Context, h host, env []string, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.name, bin}, args...)...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// remove stops every program the lab started (SIGTERM, then SIGKILL for
// those still running after a few seconds) and deletes the namespaces.
func (l *lab) remove() {
	for _, p := range l.procs {
		if !p.exited() {
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, p := range l.procs {
		select {
		case <-p.done:
		case <-time.After(time.Until(deadline)):
			p.kill()
		}
	}
	for _, h := range l.hosts {
		exec.Command("ip", "netns", "del", h.name).Run()
	}
	exec.Command("ip", "netns", "del", l.sw).Run()
}

// removeLeftovers kills what runs in mvlab namespaces and deletes them.
func removeLeftovers() (int, error) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return 0, fmt.Errorf("ip netns list: %w", err)
	}
	n := 0
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], prefix) {
			continue
		}
		if pids, err := exec.Command("ip", "netns", "pids", f[0]).Output(); err == nil {
			for _, p := range strings.Fields(string(pids)) {
				var pid int
				fmt.Sscan(p, &pid)
				if pid > 0 {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if err := ipCmd("netns", "del", f[0]); err == nil {
			n++
		}
	}
	return n, nil
}

// tempMarker names the file that marks a temporary directory as a lab's,
// so 'mvlab down' removes only those.
const tempMarker = ".mvlab"

// makeTempDir makes the lab's temporary directory (key, drive files,
// state), marked as a lab's.
func makeTempDir() (string, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, tempMarker), nil, 0o600); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// removeTempDirs removes the temporary directories labs left (those
// holding the marker); run it after their processes are gone.
func removeTempDirs() int {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), prefix+"*"))
	n := 0
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, tempMarker)); err != nil {
			continue
		}
		if os.RemoveAll(d) == nil {
			n++
		}
	}
	return n
}
