package pool

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// loopDevice attaches a sparse file of size bytes to a loop device and
// returns the device's path.
func loopDevice(t *testing.T, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to attach a loop device")
	}
	if _, err := exec.LookPath("losetup"); err != nil {
		t.Skip("needs losetup (util-linux)")
	}
	file := newDrive(t, size)
	out, err := exec.Command("losetup", "--find", "--show", file).Output()
	if err != nil {
		t.Skipf("losetup: %v (no loop devices here?)", err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v: %s", dev, err, out)
		}
	})
	return dev
}

// TestBlockDevice runs a pool on a real block device (a loop device): size
// from the device, zeroing with BLKZEROOUT.
func TestBlockDevice(t *testing.T) {
	dev := loopDevice(t, 32*MiB)
	// Old data on the device: Format refuses it, then with Force erases it.
	old := bytes.Repeat([]byte("old data "), 1<<16)
	writeAt(t, dev, old, 4*MiB)
	writeAt(t, dev, []byte("label"), 1024)
	if err := Format(dev, FormatOptions{ChunkSize: 64 * KiB}); !errors.Is(err, ErrNotBlank) {
		t.Fatalf("Format over data: %v, want ErrNotBlank", err)
	}
	if err := Format(dev, FormatOptions{ChunkSize: 64 * KiB, Force: true}); err != nil {
		t.Fatal(err)
	}
	p, err := Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { p.Close() }()
	if st := p.Stats(); st.Chunks < 470 || st.Chunks > 512 { // less 2 MiB of volume table
		t.Errorf("Stats = %+v, want about 480 chunks of 64 KiB", st)
	}
	a, _ := p.Create("a", 64*MiB, false)
	free := p.Stats().FreeChunks
	secret := pattern(int(free*64*KiB), 8)
	mustWrite(t, a, secret, 0)
	if _, err := a.WriteAt([]byte{1}, free*64*KiB); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write past the device's space: %v, want ENOSPC", err)
	}
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := p.Delete("a"); err != nil {
		t.Fatal(err)
	}
	b, _ := p.Create("b", 64*MiB, true)
	if b != nil {
		t.Fatal("a thick volume larger than the device was created")
	}
	b, err = p.Create("b", free*64*KiB, true)
	if err != nil {
		t.Fatal(err)
	}
	if !allZero(mustRead(t, b, int(b.Size()), 0)) {
		t.Error("a new volume on the device shows old data")
	}
	mustWrite(t, b, []byte("kept"), 12345)
	b.Sync()
	p.Close()
	p, err = Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = p.Volume("b")
	if got := mustRead(t, b, 4, 12345); string(got) != "kept" {
		t.Errorf("after reopen: %q", got)
	}
}

// TestBlockDeviceMounted: a drive the kernel holds (here claimed by
// another exclusive opener, as a mount would) is refused, not formatted.
func TestBlockDeviceMounted(t *testing.T) {
	dev := loopDevice(t, 8*MiB)
	f, err := os.OpenFile(dev, os.O_RDWR|os.O_EXCL, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := Format(dev, FormatOptions{Force: true}); !errors.Is(err, ErrBusy) {
		t.Errorf("Format of a claimed device: %v, want ErrBusy", err)
	}
	f.Close()
	if err := Format(dev, FormatOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err := Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := Open(dev); !errors.Is(err, ErrBusy) {
		t.Errorf("second Open: %v, want ErrBusy", err)
	}
}
