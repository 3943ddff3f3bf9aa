package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mvstack/mvstack/test/netns"
)

func TestMain(m *testing.M) { netns.Main(m) }

// TestDemo runs the showcase as 'make demo' does, with the real binaries,
// and checks what a viewer is shown: the nodes found, the volume surviving
// its replica's node killed under a write, the repair copying only the
// blocks written meanwhile, the data read back, and nothing left behind.
func TestDemo(t *testing.T) {
	netns.RequireRoot(t)
	if _, err := exec.LookPath("qemu-io"); err != nil {
		t.Skip("needs qemu-io (Debian package qemu-utils): apt-get install qemu-utils")
	}
	bins := netns.BuildBinaries(t, "./cmd/mvctl", "./cmd/mvnode", "./cmd/mvcontroller", "./cmd/osd")
	dir := filepath.Dir(bins["mvctl"])
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	err := run(ctx, []string{"mvlab", "demo", "--bin", dir}, &out, &errOut)
	if err != nil {
		t.Fatalf("the demo failed: %v\n%s%s", err, out.String(), errOut.String())
	}
	for _, want := range []string{
		`3 node\(s\) answered`,
		`(?m)^    in_sync=\w+,\w+$`,                    // both replicas in sync at first
		`wrote 33554432/33554432 bytes at offset 0`,    // the write with a replica's node dead
		`(?m)^    epoch=2\n    id=1\n    in_sync=\w+$`, // ... leaves one in sync, a term later
		`last_repair.dirty=512`,                        // the 32 MiB written meanwhile, in 64 KiB blocks
		`last_repair.full=false`,
		`last_repair.blocks=512`,
		`read 33554432/33554432 bytes at offset 33554432`, // both patterns read back
	} {
		if !regexp.MustCompile(want).MatchString(out.String()) {
			t.Errorf("the demo did not show %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "Pattern verification failed") {
		t.Errorf("data read back differs from what was written:\n%s", out.String())
	}
	if n, _ := removeLeftovers(); n > 0 {
		t.Errorf("the demo left %d namespace(s)", n)
	}
	if n := removeTempDirs(); n > 0 {
		t.Errorf("the demo left %d temporary director(ies)", n)
	}
}

func TestField(t *testing.T) {
	out := "attached=true\nid=12\nsocket=/run/x/1.sock\nsocket=/other\n"
	for key, want := range map[string]string{"id": "12", "socket": "/run/x/1.sock", "epoch": ""} {
		if got := field(out, key); got != want {
			t.Errorf("field(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestLogTail(t *testing.T) {
	var b logBuffer
	for i := range 5 {
		b.Write([]byte(strings.Repeat("x", i) + "\n"))
	}
	if got, want := b.tail(2), "... (3 earlier lines)\nxxx\nxxxx"; got != want {
		t.Errorf("tail(2) = %q, want %q", got, want)
	}
	if got, want := b.tail(10), "\nx\nxx\nxxx\nxxxx"; got != want {
		t.Errorf("tail(10) = %q, want %q", got, want)
	}
}

// TestWaitOutput: a program that exits without the awaited line is
// reported at once, with how it exited; one that prints it is awaited.
func TestWaitOutput(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("needs sh")
	}
	start := func(script string) *proc {
		p := &proc{name: "sh", out: &logBuffer{}, done: make(chan struct{})}
		p.cmd = exec.Command("sh", "-c", script)
		p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { p.err = p.cmd.Wait(); close(p.done) }()
		return p
	}
	ctx := t.Context()
	if err := start("echo starting; echo ready on eth0; sleep 0.1").waitOutput(ctx, "ready on eth0", time.Minute); err != nil {
		t.Errorf("waiting for a line printed: %v", err)
	}
	err := start("echo bind: address in use; exit 3").waitOutput(ctx, "ready on eth0", time.Minute)
	if err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("a program that exited: err %v, want it to say how it exited", err)
	}
}
