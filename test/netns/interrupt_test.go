package netns_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mvstack/mvstack/test/netns"
)

// helperEnv makes TestHelperLab build a lab in a child test process that
// the interrupt tests then kill.
const helperEnv = "MVT_NETNS_HELPER"

// TestHelperLab is not a test on its own: run by the tests below in a child
// process, it makes a lab with a sleeping process in it, prints their
// names and waits to be killed.
func TestHelperLab(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		return
	}
	lab := netns.New(t, netns.Config{Hosts: 2, Prefix: "helper"})
	p := lab.Hosts[1].Start(t, "sleep", "1000")
	names := []string{lab.Switch}
	for _, h := range lab.Hosts {
		names = append(names, h.Name)
	}
	fmt.Printf("lab %s %d\n", strings.Join(names, ","), p.Pid())
	select {
	case <-t.Context().Done():
	case <-time.After(60 * time.Second):
		t.Error("helper lab was not killed within 60 s")
	}
}

// helperLab starts TestHelperLab in a child process and returns it, a
// channel that yields its exit, the names of its namespaces and the pid of
// the process inside.
func helperLab(t *testing.T) (child *osexec.Cmd, exited <-chan error, names []string, sleeper int) {
	t.Helper()
	child = osexec.Command(os.Args[0], "-test.run=^TestHelperLab$", "-test.count=1")
	child.Env = append(os.Environ(), helperEnv+"=1")
	var stderr bytes.Buffer // read only after Wait
	child.Stderr = &stderr
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	t.Cleanup(func() {
		_ = child.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("helper's stderr:\n%s", stderr.String())
		}
	})
	line := make(chan string, 1)
	go func() {
		defer func() {
			done <- child.Wait()
			close(done) // the test and the cleanup may both receive
		}()
		r := bufio.NewReader(out)
		for {
			s, err := r.ReadString('\n')
			if strings.HasPrefix(s, "lab ") {
				line <- s
			}
			if err != nil {
				close(line)
				_, _ = io.Copy(io.Discard, r)
				return
			}
		}
	}()
	var s string
	select {
	case s = <-line:
	case <-time.After(30 * time.Second):
		t.Fatal("the helper lab did not come up within 30 s")
	}
	f := strings.Fields(s)
	if len(f) != 3 {
		t.Fatalf("helper printed %q, want lab NAMES PID", s)
	}
	sleeper, err = strconv.Atoi(f[2])
	if err != nil {
		t.Fatal(err)
	}
	return child, done, strings.Split(f[1], ","), sleeper
}

// namespacesLeft returns those of names that `ip netns list` still shows.
func namespacesLeft(t *testing.T, names []string) []string {
	t.Helper()
	out, err := runHere(t, "ip", "netns", "list")
	if err != nil {
		t.Fatalf("ip netns list: %v\n%s", err, out)
	}
	var left []string
	for _, n := range names {
		if strings.Contains(out, n) {
			left = append(left, n)
		}
	}
	return left
}

// waitGone polls (bounded) until process pid no longer exists or is a
// zombie, and reports whether it went.
func waitGone(pid int, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if errors.Is(err, os.ErrNotExist) {
			return true
		}
		if err == nil {
			if i := strings.LastIndexByte(string(b), ')'); i > 0 && strings.HasPrefix(string(b[i+1:]), " Z") {
				return true
			}
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond) // polling the kernel for a real process, bounded
	}
}

func TestInterruptRemovesLabs(t *testing.T) {
	netns.RequireRoot(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			if signal.Ignored(sig) {
				// The helper inherits the ignored disposition, so the
				// signal would not end it; the harness leaves such
				// signals alone.
				t.Logf("%v is ignored by this process (nohup or a background job), so by the helper too: not sent", sig)
				return
			}
			child, exited, names, sleeper := helperLab(t)
			if left := namespacesLeft(t, names); len(left) != len(names) {
				t.Fatalf("helper's namespaces %v not all listed (found %v)", names, left)
			}
			if err := child.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-exited:
				var ee *osexec.ExitError
				if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != sig {
					t.Errorf("helper ended with %v, want death by %v", err, sig)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("helper still running 30 s after %v", sig)
			}
			if left := namespacesLeft(t, names); len(left) > 0 {
				t.Errorf("after %v these namespaces remain: %v", sig, left)
			}
			if !waitGone(sleeper, 10*time.Second) {
				t.Errorf("process %d started in the lab survived %v", sleeper, sig)
			}
		})
	}
}

func TestSweepRemovesLeftoversOfDeadRuns(t *testing.T) {
	// A lab of this (live) process must survive the sweep.
	mine := netns.New(t, netns.Config{Hosts: 1, Prefix: "survivor"})

	child, exited, names, sleeper := helperLab(t)
	if err := child.Process.Kill(); err != nil { // no chance to clean up
		t.Fatal(err)
	}
	<-exited
	if left := namespacesLeft(t, names); len(left) != len(names) {
		// Another test process's New swept them already: what Sweep
		// promises still holds, checked below.
		t.Logf("after SIGKILL only %v of %v remain: a parallel run swept the rest", left, names)
	}
	if !waitGone(sleeper, 10*time.Second) {
		t.Errorf("process %d in the killed run's lab outlived its test process", sleeper)
	}
	if err := netns.Sweep(); err != nil {
		t.Fatal(err)
	}
	if left := namespacesLeft(t, names); len(left) > 0 {
		t.Errorf("Sweep left namespaces of a dead run: %v", left)
	}
	ours := append([]string{mine.Switch}, mine.Hosts[0].Name)
	if left := namespacesLeft(t, ours); len(left) != len(ours) {
		t.Errorf("Sweep removed a live run's namespaces: only %v of %v remain", left, ours)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if out, err := mine.Hosts[0].Command(ctx, "ip", "link", "show", "eth0").CombinedOutput(); err != nil {
		t.Errorf("the surviving lab is broken after Sweep: %v\n%s", err, out)
	}
}
