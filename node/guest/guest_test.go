package guest_test

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/mvstack/mvstack/node/guest"
)

func TestBuildCachesAGuest(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (apt-get download of the kernel package): run as root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := guest.DefaultConfig()
	cfg.Recheck = 0 // ask apt for the version, as a first build does
	g, err := guest.Build(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("guest %s: %s %s", g.Version, g.Kernel, g.Initrd)
	k, err := os.ReadFile(g.Kernel)
	if err != nil {
		t.Fatal(err)
	}
	if len(k) < 4 || string(k[:4]) != "\x7fELF" {
		t.Errorf("%s is not an ELF vmlinux", g.Kernel)
	}
	entries := readCPIO(t, g.Initrd)
	for _, want := range []string{"init", "bin/busybox", "dev/console", "lib/modules/virtio_blk.ko", "lib/modules/virtio_pci.ko"} {
		if _, ok := entries[want]; !ok {
			t.Errorf("initramfs lacks %s", want)
		}
	}
	if !bytes.Contains(entries["init"], []byte(guest.ReadyMarker)) || bytes.Contains(entries["init"], []byte("MODULES")) {
		t.Errorf("init script:\n%s", entries["init"])
	}
	// A second build reuses the cache without asking apt.
	cfg.Recheck = time.Hour
	g2, err := guest.Build(ctx, cfg)
	if err != nil || g2 != g {
		t.Errorf("second Build = %+v, %v; want %+v", g2, err, g)
	}
}

// readCPIO parses a newc archive into name → body.
func readCPIO(t *testing.T, path string) map[string][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	hex := func(s []byte) int {
		n := 0
		for _, c := range s {
			n <<= 4
			switch {
			case c >= '0' && c <= '9':
				n |= int(c - '0')
			case c >= 'a' && c <= 'f':
				n |= int(c-'a') + 10
			default:
				t.Fatalf("bad hex %q", s)
			}
		}
		return n
	}
	align := func(n int) int { return (n + 3) &^ 3 }
	for off := 0; ; {
		if off+110 > len(b) || string(b[off:off+6]) != "070701" {
			t.Fatalf("bad cpio header at %d", off)
		}
		h := b[off : off+110]
		size, namesize := hex(h[54:62]), hex(h[94:102])
		name := string(b[off+110 : off+110+namesize-1])
		data := align(off + 110 + namesize)
		if name == "TRAILER!!!" {
			return out
		}
		out[name] = b[data : data+size]
		off = align(data + size)
	}
}
