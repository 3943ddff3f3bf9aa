package netns

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"

	vnetns "github.com/vishvananda/netns"
)

// Command returns a command that runs bin inside the host's namespace
// through `ip netns exec`, which also mounts the namespace's own /sys, so
// /sys/class/net shows the lab's interfaces. The command runs in its own
// process group; cancelling ctx kills the whole group, and the kernel kills
// it if the test process dies (Pdeathsig). bin is looked up in PATH now;
// a missing program is reported by Start or Run.
func (h *Host) Command(ctx context.Context, bin string, args ...string) *exec.Cmd {
	argv := append([]string{"netns", "exec", h.Name, bin}, args...)
	cmd := exec.CommandContext(ctx, "ip", argv...)
	if _, err := exec.LookPath(bin); err != nil {
		cmd.Err = fmt.Errorf("netns: %s: %w", h.Name, err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Run runs bin inside the host's namespace, waits for it and returns its
// combined output; a failure's error includes the output.
func (h *Host) Run(ctx context.Context, bin string, args ...string) (string, error) {
	out, err := h.Command(ctx, bin, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("netns: %s %s in %s: %w\n%s", bin, strings.Join(args, " "), h.Name, err, out)
	}
	return string(out), nil
}

// Do runs fn on a goroutine locked to an OS thread that has entered the
// host's network namespace, and waits for it. Sockets fn opens belong to
// that namespace for their whole life and may be used from any goroutine
// afterwards. The thread is returned to the runtime only if it could be
// moved back to its original namespace; otherwise it stays locked, and Go
// discards it when the goroutine ends.
func (h *Host) Do(fn func() error) error {
	return doIn(h.Name, fn)
}

// doIn is Do for any named namespace.
func doIn(name string, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := vnetns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("netns: current namespace: %w", err)
			return
		}
		defer orig.Close()
		target, err := vnetns.GetFromName(name)
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("netns: opening namespace %s: %w", name, err)
			return
		}
		defer target.Close()
		if err := vnetns.Set(target); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("netns: entering namespace %s: %w", name, err)
			return
		}
		var fnErr error
		func() {
			defer func() {
				if r := recover(); r != nil {
					fnErr = fmt.Errorf("netns: panic in %s: %v", name, r)
				}
			}()
			fnErr = fn()
		}()
		if err := vnetns.Set(orig); err != nil {
			// Leave the thread locked: it is in the wrong namespace and
			// must not run other goroutines. It dies with this goroutine.
			done <- errors.Join(fnErr, fmt.Errorf("netns: leaving namespace %s: %w", name, err))
			return
		}
		runtime.UnlockOSThread()
		done <- fnErr
	}()
	return <-done
}

// operState returns the operational state of the host's interface ("UP",
// "DOWN", "LOWERLAYERDOWN", ...).
func (h *Host) operState() (string, error) {
	return operState(h.Name, h.Iface)
}

// waitOperUp waits (bounded) until interface iface in namespace ns is
// operationally up.
func waitOperUp(ns, iface string) error {
	deadline := time.Now().Add(settleTimeout)
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		st, err := operState(ns, iface)
		if err != nil {
			return err
		}
		if st == "UP" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("netns: %s in %s is %s after %v, want UP", iface, ns, st, settleTimeout)
		}
		time.Sleep(delay) // the kernel's link watcher has no event we can wait on here
	}
}

// operState returns the operational state of iface in namespace ns.
func operState(ns, iface string) (string, error) {
	out, err := run(nil, "ip", "-n", ns, "-j", "link", "show", "dev", iface)
	if err != nil {
		return "", err
	}
	var links []struct {
		OperState string `json:"operstate"`
		MTU       int    `json:"mtu"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		return "", fmt.Errorf("netns: ip -j link show %s in %s: unexpected output %q", iface, ns, out)
	}
	return links[0].OperState, nil
}

// bridgePorts returns the STP state ("forwarding", "disabled", ...) of every
// port of the lab's bridge.
func (l *Lab) bridgePorts() (map[string]string, error) {
	out, err := run(nil, "bridge", "-n", l.Switch, "-j", "link", "show")
	if err != nil {
		return nil, err
	}
	var ports []struct {
		Name  string `json:"ifname"`
		State string `json:"state"`
	}
	if err := json.Unmarshal(out, &ports); err != nil {
		return nil, fmt.Errorf("netns: bridge -j link show in %s: %w", l.Switch, err)
	}
	m := make(map[string]string, len(ports))
	for _, p := range ports {
		m[p.Name] = p.State
	}
	return m, nil
}
