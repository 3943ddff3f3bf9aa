package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
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
	procs []*exec.Cmd
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

// start runs a program inside a host's namespace in the background.
func (l *lab) start(h host, bin string, args ...string) (*exec.Cmd, *bytes.Buffer, error) {
	var out bytes.Buffer
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.name, bin}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	l.procs = append(l.procs, cmd)
	return cmd, &out, nil
}

// run runs a program inside a host's namespace and returns its output.
func (l *lab) run(ctx context.Context, h host, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.name, bin}, args...)...).CombinedOutput()
	return string(out), err
}

func (l *lab) remove() {
	for _, p := range l.procs {
		if p.Process != nil {
			syscall.Kill(-p.Process.Pid, syscall.SIGTERM)
		}
	}
	for _, p := range l.procs {
		done := make(chan struct{})
		go func() { p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
			<-done
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
