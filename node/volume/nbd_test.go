package volume_test

import (
	"bytes"
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/mvstack/mvstack/aoe/nbd"
)

// A real NBD client (qemu-io) writes and reads the volume through the NBD
// front end; both replicas' files hold what it wrote. Real time: the client
// is a process.
func TestServedOverNBD(t *testing.T) {
	qemuIO, err := exec.LookPath("qemu-io")
	if err != nil {
		t.Skip("needs qemu-io (apt qemu-utils)")
	}
	r := newRig(t, 0)
	cfg := nbd.DefaultConfig()
	cfg.Exports = []nbd.Export{{Name: "vol", Device: r.vol}}
	srv, err := nbd.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "nbd.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	out, err := exec.CommandContext(ctx, qemuIO, "-f", "raw",
		"-c", "write -P 0x5a 65536 1M",
		"-c", "flush",
		"-c", "read -P 0x5a 65536 1M",
		"nbd+unix:///vol?socket="+sock).CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("Pattern verification failed")) {
		t.Fatalf("qemu-io: %v\n%s", err, out)
	}
	want := bytes.Repeat([]byte{0x5a}, 1<<20)
	for i, rep := range r.reps {
		if got := readFile(t, rep.path)[65536 : 65536+1<<20]; !bytes.Equal(got, want) {
			t.Errorf("replica %d's file lacks what qemu-io wrote over NBD", i)
		}
	}
}
