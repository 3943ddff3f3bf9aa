package netns_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mvstack/mvstack/aoe/initiator"
	"github.com/mvstack/mvstack/aoe/target"
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

// pattern fills b with data that depends on seed and the byte offset off,
// so any chunk can be made again for checking.
func pattern(b []byte, seed uint64, off int64) {
	r := rand.New(rand.NewPCG(seed, uint64(off)))
	for i := 0; i+8 <= len(b); i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
}

const ioChunk = 1 << 20

// parallel runs f for every 1 MiB chunk of [0, size), 8 at a time, and
// returns the first error.
func parallel(size int64, f func(off int64, buf []byte) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	sem := make(chan []byte, 8)
	for range 8 {
		sem <- make([]byte, ioChunk)
	}
	for off := int64(0); off < size; off += ioChunk {
		buf := <-sem
		wg.Add(1)
		go func() {
			defer func() { sem <- buf; wg.Done() }()
			if err := f(off, buf[:min(ioChunk, size-off)]); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// writeVerify writes size bytes of pattern data through d in 1 MiB calls,
// 8 at a time, flushes, reads it all back and compares, then compares the
// backing file when one is given.
func writeVerify(t *testing.T, d *initiator.Device, size int64, seed uint64, file string) {
	t.Helper()
	err := parallel(size, func(off int64, buf []byte) error {
		pattern(buf, seed, off)
		_, err := d.WriteAt(buf, off)
		return err
	})
	if err != nil {
		t.Fatalf("write to AoE %d.%d: %v", d.Shelf(), d.Slot(), err)
	}
	if err := d.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	check := func(what string, r io.ReaderAt) {
		t.Helper()
		err := parallel(size, func(off int64, buf []byte) error {
			if _, err := r.ReadAt(buf, off); err != nil {
				return err
			}
			want := make([]byte, len(buf))
			pattern(want, seed, off)
			if !bytes.Equal(buf, want) {
				return fmt.Errorf("%s: bytes %d to %d differ from what was written", what, off, off+int64(len(buf)))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	check(fmt.Sprintf("read back from AoE %d.%d", d.Shelf(), d.Slot()), d)
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		check("the backing file "+file, f)
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
				{"mvaoe", 2, ours.MAC, ourFile, 2, (mtu - 36) / 512, target.DefaultBufferCount, "mvstack"},
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
					writeVerify(t, d, size, c.seed, c.file)
				})
			}
		})
	}
}

// startTarget runs mvaoe serve on h and waits for its ready line.
func startTarget(t *testing.T, h *netns.Host, mvaoe string, args ...string) *netns.Process {
	t.Helper()
	p := h.Start(t, mvaoe, append([]string{"serve"}, args...)...)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := p.WaitOutput(ctx, "serving"); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAoEToolsAndTsharkAgreeWithOurTarget: aoeping identifies our target,
// aoecfg runs every config string operation against it, a MAC outside the
// mask gets no answer, and tshark decodes the capture of it all without a
// malformed frame.
func TestAoEToolsAndTsharkAgreeWithOurTarget(t *testing.T) {
	netns.RequireRoot(t)
	needTools(t, map[string]string{"aoeping": "aoetools", "aoecfg": "aoetools", "tshark": "tshark"})
	bin := netns.BuildBinaries(t, "./cmd/mvaoe")
	lab := netns.New(t, netns.Config{Hosts: 2, MTU: 1500})
	ini, tgt := lab.Hosts[0], lab.Hosts[1]
	capture := lab.Capture(t, filepath.Join(t.TempDir(), "aoe.pcap"), proto.EtherTypeAoE)
	file := backingFile(t, "disk.img", 8<<20)
	startTarget(t, tgt, bin["mvaoe"], "3", "1", tgt.Iface, file)
	startTarget(t, tgt, bin["mvaoe"], "--mac-mask", "02:00:00:00:00:99", "3", "2", tgt.Iface, backingFile(t, "masked.img", 1<<20))

	tool := func(name string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		out, err := ini.Command(ctx, name, args...).CombinedOutput()
		return string(out), err
	}
	out, err := tool("aoeping", "-s", "5", "-I", "3", "1", ini.Iface)
	if err != nil || !strings.Contains(out, "model: mvstack AoE") || !strings.Contains(out, "serial_number: mv3.1") {
		t.Errorf("aoeping -I 3 1: %v; want our model and serial in:\n%s", err, out)
	}
	if _, err := tool("aoeping", "-s", "2", "3", "2", ini.Iface); err == nil {
		t.Error("aoeping reached 3.2, whose MAC mask leaves the initiator out")
	}

	cfg := func(cmd, s string) string {
		t.Helper()
		args := []string{"-c", cmd, "-t", "1"}
		if s != "" {
			args = append(args, "-s", s)
		}
		out, _ := tool("aoecfg", append(args, "3", "1", ini.Iface)...)
		return out
	}
	for _, c := range []struct {
		cmd, arg string
		want     string // "" means no answer
	}{
		{"set", "vol=alpha", "vol=alpha"},
		{"read", "", "vol=alpha"},
		{"test", "vol=alpha", "vol=alpha"},
		{"test", "vol=alp", ""},
		{"prefix", "vol=", "vol=alpha"},
		{"prefix", "nope", ""},
		{"fset", "vol=beta", "vol=beta"},
		{"read", "", "vol=beta"},
	} {
		out := cfg(c.cmd, c.arg)
		if c.want == "" && strings.TrimSpace(out) != "" {
			t.Errorf("aoecfg -c %s -s %q answered, want silence:\n%s", c.cmd, c.arg, out)
		}
		if c.want != "" && !strings.Contains(out, c.want) {
			t.Errorf("aoecfg -c %s -s %q: want %q in:\n%s", c.cmd, c.arg, c.want, out)
		}
	}
	if out := cfg("set", "vol=gamma"); strings.Contains(out, "vol=gamma") {
		t.Errorf("aoecfg -c set over a present string took effect:\n%s", out)
	}
	if out := cfg("read", ""); !strings.Contains(out, "vol=beta") {
		t.Errorf("config string after a refused set:\n%s", out)
	}

	// Our initiator: I/O, an error reply and a reservation, for the capture.
	in := aoeInitiator(t, ini)
	d := openDevice(t, in, 3, 1)
	writeVerify(t, d, 1<<20, 7, file)
	if _, err := d.WriteAt(make([]byte, 1024), 8<<20-512); !errors.Is(err, initiator.ErrOutOfRange) {
		t.Errorf("write across the end: %v", err)
	}
	if _, err := d.Reserve(t.Context(), []proto.MAC{ini.MAC}, false); err != nil {
		t.Errorf("reserve: %v", err)
	}
	if _, err := d.Reserve(t.Context(), nil, false); err != nil {
		t.Errorf("release: %v", err)
	}
	if found, _ := in.Discover(t.Context(), 3, 2); len(found) != 0 {
		t.Errorf("discovery found the masked export 3.2: %+v", found)
	}

	if out, err := tool(bin["mvaoe"], "discover", "--iface", ini.Iface, "--wait", "1s"); err != nil ||
		!strings.Contains(out, "3.1") || !strings.Contains(out, tgt.MAC.String()) || !strings.Contains(out, `"vol=beta"`) || strings.Contains(out, "3.2") {
		t.Errorf("mvaoe discover: %v; want 3.1 at %s with its config string, and not the masked 3.2:\n%s", err, tgt.MAC, out)
	}
	if out, err := tool(bin["mvaoe"], "stat", "--iface", ini.Iface, "--wait", "1s"); err != nil ||
		!strings.Contains(out, "0.008 GB") || !strings.Contains(out, "mvstack AoE") {
		t.Errorf("mvaoe stat: %v; want 3.1 with 8 MiB and our model:\n%s", err, out)
	}

	if err := capture.Stop(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	count := func(filter string) int {
		t.Helper()
		out, err := exec.CommandContext(ctx, "tshark", "-r", capture.Path, "-Y", filter).Output()
		if err != nil {
			t.Fatalf("tshark -Y %s: %v", filter, err)
		}
		return strings.Count(string(out), "\n")
	}
	if n := count("aoe"); n < 1000 {
		t.Errorf("tshark decoded %d AoE frames, want the whole exchange (over 1000)", n)
	}
	if n := count("_ws.malformed || _ws.expert.severity == error"); n != 0 {
		t.Errorf("tshark finds %d malformed AoE frames", n)
	}
	if n := count("aoe.cmd == 1 && aoe.response == 1"); n == 0 {
		t.Error("tshark saw no Query Config response")
	}
}

// TestAoEWithFivePercentLoss writes 256 MiB of random data through 5% frame
// loss on the bridge and reads it back intact.
func TestAoEWithFivePercentLoss(t *testing.T) {
	netns.RequireRoot(t)
	netns.RequireNft(t)
	bin := netns.BuildBinaries(t, "./cmd/mvaoe")
	lab := netns.New(t, netns.Config{Hosts: 2, MTU: 9000})
	ini, tgt := lab.Hosts[0], lab.Hosts[1]
	const size = 256 << 20
	file := backingFile(t, "disk.img", size)
	startTarget(t, tgt, bin["mvaoe"], "--write-back", "4", "1", tgt.Iface, file)
	in := aoeInitiator(t, ini)
	d := openDevice(t, in, 4, 1)
	if err := lab.SetLoss(5, proto.EtherTypeAoE); err != nil {
		t.Fatal(err)
	}
	writeVerify(t, d, size, 11, file)
	var sent, retx uint64
	for _, p := range d.Paths() {
		sent, retx = sent+p.Sent, retx+p.Retransmits
	}
	if retx == 0 {
		t.Errorf("no retransmissions in %d frames: was the loss applied?", sent)
	}
	t.Logf("%d frames sent, %d retransmitted", sent, retx)
}

// TestAoEKill9KeepsAckedWrites kills the target with SIGKILL in the middle
// of a write stream: every write acked before the kill is in the file, and
// the stream completes once the target is back.
func TestAoEKill9KeepsAckedWrites(t *testing.T) {
	netns.RequireRoot(t)
	bin := netns.BuildBinaries(t, "./cmd/mvaoe")
	lab := netns.New(t, netns.Config{Hosts: 2, MTU: 9000})
	ini, tgt := lab.Hosts[0], lab.Hosts[1]
	const (
		size  = 64 << 20
		block = 64 << 10
	)
	file := backingFile(t, "disk.img", size)
	p := startTarget(t, tgt, bin["mvaoe"], "5", "1", tgt.Iface, file)
	in := aoeInitiator(t, ini)
	d := openDevice(t, in, 5, 1)

	var (
		mu     sync.Mutex
		acked  = map[int64]bool{}
		failed error
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = parallel(size, func(off int64, buf []byte) error {
			for o := off; o < off+int64(len(buf)); o += block {
				b := make([]byte, block)
				pattern(b, 13, o)
				if _, err := d.WriteAt(b, o); err != nil {
					mu.Lock()
					failed = err
					mu.Unlock()
					return err
				}
				mu.Lock()
				acked[o] = true
				mu.Unlock()
			}
			return nil
		})
	}()
	// Kill once some writes are acked, and check those on disk at once.
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 64 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond) // polling the real stream, bounded
	}
	p.Kill()
	mu.Lock()
	snapshot := make([]int64, 0, len(acked))
	for o := range acked {
		snapshot = append(snapshot, o)
	}
	mu.Unlock()
	if len(snapshot) == 0 {
		t.Fatal("no write was acked before the kill")
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checkBlock := func(o int64) {
		t.Helper()
		got, want := make([]byte, block), make([]byte, block)
		if _, err := f.ReadAt(got, o); err != nil {
			t.Fatal(err)
		}
		pattern(want, 13, o)
		if !bytes.Equal(got, want) {
			t.Fatalf("block at %d was acked but is not in the file", o)
		}
	}
	for _, o := range snapshot {
		checkBlock(o)
	}
	t.Logf("%d of %d blocks acked before kill -9, all on disk", len(snapshot), size/block)

	// The target comes back; the writes in flight are retransmitted to it.
	startTarget(t, tgt, bin["mvaoe"], "5", "1", tgt.Iface, file)
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		t.Fatal("the write stream did not finish after the target came back")
	}
	if failed != nil {
		t.Fatalf("a write failed across the restart: %v", failed)
	}
	for o := int64(0); o < size; o += block {
		checkBlock(o)
	}
}

// TestAoENBDFrontEnd serves an AoE device (our initiator against our
// target) as an NBD export and drives it with qemu-img, qemu-io, nbdinfo,
// nbdcopy and fio's nbd engine.
func TestAoENBDFrontEnd(t *testing.T) {
	netns.RequireRoot(t)
	needTools(t, map[string]string{"qemu-img": "qemu-utils", "qemu-io": "qemu-utils", "nbdinfo": "libnbd-bin", "nbdcopy": "libnbd-bin", "fio": "fio"})
	bin := netns.BuildBinaries(t, "./cmd/mvaoe")
	lab := netns.New(t, netns.Config{Hosts: 2, MTU: 9000})
	ini, tgt := lab.Hosts[0], lab.Hosts[1]
	const size = 64 << 20
	file := backingFile(t, "disk.img", size)
	startTarget(t, tgt, bin["mvaoe"], "6", "1", tgt.Iface, file)
	sock := filepath.Join(t.TempDir(), "aoe.sock")
	front := ini.Start(t, bin["mvaoe"], "nbd", "--iface", ini.Iface, "--name", "vol", "6.1", sock)
	ctx, cancel := context.WithTimeout(t.Context(), 150*time.Second)
	defer cancel()
	if err := front.WaitOutput(ctx, "serving AoE 6.1"); err != nil {
		t.Fatal(err)
	}
	uri := "nbd+unix:///vol?socket=" + sock
	img := "driver=nbd,path=" + sock + ",export=vol"
	work := t.TempDir() // fio leaves its verify state in its working directory
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = work
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := run("nbdinfo", uri); !strings.Contains(out, fmt.Sprintf("export-size: %d", size)) {
		t.Errorf("nbdinfo does not report %d bytes:\n%s", size, out)
	}
	if out := run("qemu-img", "info", "--output=json", "--image-opts", img); !strings.Contains(out, fmt.Sprintf(`"virtual-size": %d`, size)) {
		t.Errorf("qemu-img info:\n%s", out)
	}
	run("qemu-io", "--image-opts", img, "-c", "write -P 0x5a 1000 300000", "-c", "write -P 0xc3 60M 1M", "-c", "flush")
	run("qemu-io", "--image-opts", "-r", img, "-c", "read -P 0x5a 1000 300000", "-c", "read -P 0xc3 60M 1M", "-c", "read -P 0 0 1000")

	// nbdcopy 64 MiB (the whole export) in and out, byte for byte.
	const copySize = size
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	data := make([]byte, copySize)
	pattern(data, 17, 0)
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	run("nbdcopy", src, uri)
	run("nbdcopy", uri, dst)
	got, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("nbdcopy: 64 MiB copied in and out differ")
	}
	disk, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(disk[:copySize], data) {
		t.Fatal("the target's file does not hold what nbdcopy wrote")
	}

	// fio's nbd engine, random reads and writes with verification.
	out := run("fio", "--name=aoe", "--ioengine=nbd", "--uri="+uri, "--rw=randrw", "--bs=4k", "--iodepth=16",
		"--size=16m", "--verify=crc32c", "--verify_fatal=1", "--do_verify=1", "--output-format=json")
	if !strings.Contains(out, `"error" : 0`) {
		t.Errorf("fio randrw verify did not finish cleanly:\n%s", out)
	}
}

// TestAoETargetSurvivesRandomFrames throws mutated and random frames at
// mvaoe serve over a real socket: it keeps answering, its file keeps its
// size, and the bytes no valid request addressed are untouched.
func TestAoETargetSurvivesRandomFrames(t *testing.T) {
	netns.RequireRoot(t)
	bin := netns.BuildBinaries(t, "./cmd/mvaoe")
	lab := netns.New(t, netns.Config{Hosts: 2, MTU: 1500})
	ini, tgt := lab.Hosts[0], lab.Hosts[1]
	const size = 1 << 20
	file := backingFile(t, "disk.img", size)
	// A guard pattern in the last 64 KiB, which no frame below addresses
	// with a valid LBA (their LBAs are below 1024 or far past the end).
	guard := make([]byte, 64<<10)
	pattern(guard, 23, size-int64(len(guard)))
	if err := os.WriteFile(file, append(make([]byte, size-len(guard)), guard...), 0o644); err != nil {
		t.Fatal(err)
	}
	startTarget(t, tgt, bin["mvaoe"], "7", "1", tgt.Iface, file)
	var link *proto.PacketLink
	if err := ini.Do(func() (err error) {
		link, err = proto.OpenPacketLink(ini.Iface, proto.EtherTypeAoE, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer link.Close()
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 20000; i++ {
		b := make([]byte, 46+r.IntN(1400))
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		// Most frames look like AoE to the target: version 1, our
		// address, ATA or Query Config (a random mask or reservation would
		// lock this test's own initiator out, as it should), a low LBA or
		// one far past the end.
		if r.IntN(4) != 0 {
			b[0] = 0x10 | b[0]&0x0f&^0x08
			b[2], b[3], b[4] = 0, 7, 1
			b[5] = byte(r.IntN(2))
			if b[5] == 0 {
				b[13] = []byte{0x20, 0x24, 0x30, 0x34, 0xec, 0xe5, 0xea, 0xc8}[r.IntN(8)]
				b[16], b[17], b[18] = 0, 0, 0 // LBA < 1024, or…
				if r.IntN(2) == 0 {
					b[18] = 0xff // …past the end
				}
				b[15] &= 0x03
			}
		}
		if err := link.WriteTo(b, tgt.MAC); err != nil {
			t.Fatal(err)
		}
	}
	in := aoeInitiator(t, ini)
	d := openDevice(t, in, 7, 1)
	if d.Size() != size {
		t.Errorf("IDENTIFY after the storm says %d bytes, want %d", d.Size(), size)
	}
	got := make([]byte, len(guard))
	if _, err := d.ReadAt(got, size-int64(len(guard))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, guard) {
		t.Error("random frames changed bytes no valid request addressed")
	}
	if st, err := os.Stat(file); err != nil || st.Size() != size {
		t.Errorf("backing file is %v bytes after the storm (%v), want %d", st.Size(), err, size)
	}
}
