package netns_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mvstack/mvstack/aoe/initiator"
	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/test/netns"
)

// needTools skips the test when an external tool is missing, naming it and
// its Debian package.
func needTools(t *testing.T, tools map[string]string) {
	t.Helper()
	for tool, pkg := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (Debian package %s): apt-get install %s", tool, pkg, pkg)
		}
	}
}

// backingFile makes a file of size bytes in the test's temporary directory.
func backingFile(t *testing.T, name string, size int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return path
}

// aoeInitiator opens an AoE initiator on h's interface, inside its namespace.
func aoeInitiator(t *testing.T, h *netns.Host) *initiator.Initiator {
	t.Helper()
	var link *proto.PacketLink
	if err := h.Do(func() (err error) {
		link, err = proto.OpenPacketLink(h.Iface, proto.EtherTypeAoE, nil)
		return err
	}); err != nil {
		t.Fatalf("%s: %v", h, err)
	}
	cfg := initiator.DefaultConfig()
	cfg.Links = []proto.Link{link}
	in, err := initiator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); link.Close() })
	return in
}

// openDevice polls discovery (bounded) until shelf.slot answers.
func openDevice(t *testing.T, in *initiator.Initiator, shelf uint16, slot uint8) *initiator.Device {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for {
		d, err := in.Open(ctx, shelf, slot)
		if err == nil {
			return d
		}
		if !errors.Is(err, initiator.ErrNoTarget) || ctx.Err() != nil {
			t.Fatalf("open %d.%d: %v", shelf, slot, err)
		}
	}
}

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// writeVerify writes data at 0 in 1 MiB calls, 8 at a time, reads it back
// the same way and compares; then compares the backing file when given.
func writeVerify(t *testing.T, d *initiator.Device, data []byte, file string) {
	t.Helper()
	const chunk = 1 << 20
	var wg sync.WaitGroup
	errs := make(chan error, len(data)/chunk+1)
	sem := make(chan struct{}, 8)
	each := func(f func(off int) error) {
		for off := 0; off < len(data); off += chunk {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				if err := f(off); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
	}
	each(func(off int) error {
		_, err := d.WriteAt(data[off:min(off+chunk, len(data))], int64(off))
		return err
	})
	if err := d.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	got := make([]byte, len(data))
	each(func(off int) error {
		_, err := d.ReadAt(got[off:min(off+chunk, len(data))], int64(off))
		return err
	})
	close(errs)
	for err := range errs {
		t.Fatalf("I/O on AoE %d.%d: %v", d.Shelf(), d.Slot(), err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("AoE %d.%d: data read back differs from data written", d.Shelf(), d.Slot())
	}
	if file != "" {
		disk, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(disk[:len(data)], data) {
			t.Fatalf("the backing file %s does not hold what the initiator wrote", file)
		}
	}
}

// TestAoEInitiatorAgainstVbladeAndOurTarget: discovery, IDENTIFY and a
// 64 MiB random write/read/verify against vblade and against mvaoe serve,
// at MTU 1500 and 9000.
func TestAoEInitiatorAgainstVbladeAndOurTarget(t *testing.T) {
	netns.RequireRoot(t)
	needTools(t, map[string]string{"vblade": "vblade"})
	bin := netns.BuildBinaries(t, "./cmd/mvaoe")
	const size = 64 << 20
	for _, mtu := range []int{1500, 9000} {
		t.Run(fmt.Sprintf("MTU%d", mtu), func(t *testing.T) {
			lab := netns.New(t, netns.Config{Hosts: 3, MTU: mtu})
			ini, vb, ours := lab.Hosts[0], lab.Hosts[1], lab.Hosts[2]
			vbFile := backingFile(t, "vblade.img", size)
			ourFile := backingFile(t, "ours.img", size)
			vb.Start(t, "vblade", "1", "1", vb.Iface, vbFile)
			ours.Start(t, bin["mvaoe"], "serve", "--config", "mvstack", "2", "1", ours.Iface, ourFile)

			in := aoeInitiator(t, ini)
			for _, c := range []struct {
				name        string
				shelf       uint16
				mac         proto.MAC
				file        string
				seed        uint64
				wantSectors int
				wantBuffers int
				wantConfig  string
			}{
				{"vblade", 1, vb.MAC, vbFile, 1, (mtu - 36) / 512, 0, ""},
				{"mvaoe", 2, ours.MAC, ourFile, 2, (mtu - 36) / 512, 64, "mvstack"},
			} {
				t.Run(c.name, func(t *testing.T) {
					d := openDevice(t, in, c.shelf, 1)
					if d.Size() != size {
						t.Errorf("IDENTIFY says %d bytes, want %d", d.Size(), size)
					}
					paths := d.Paths()
					if len(paths) != 1 || paths[0].MAC != c.mac || paths[0].SectorsPerFrame != c.wantSectors {
						t.Errorf("discovery: %+v; want one path to %s with %d sectors per frame", paths, c.mac, c.wantSectors)
					}
					if c.wantBuffers != 0 && (paths[0].BufferCount != c.wantBuffers || paths[0].Config != c.wantConfig) {
						t.Errorf("discovery: buffer count %d config %q; want %d %q", paths[0].BufferCount, paths[0].Config, c.wantBuffers, c.wantConfig)
					}
					writeVerify(t, d, randomBytes(size, c.seed), c.file)
				})
			}
		})
	}
}
