package nbd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fileDevice serves a plain file.
type fileDevice struct {
	*os.File
	size    int64
	mu      sync.Mutex
	flushes int
}

func (f *fileDevice) Size() int64 { return f.size }
func (f *fileDevice) flushCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.flushes
}

func (f *fileDevice) Flush() error {
	f.mu.Lock()
	f.flushes++
	f.mu.Unlock()
	return f.Sync()
}

func newFile(t *testing.T, size int64) (*fileDevice, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &fileDevice{File: f, size: size}, path
}

// serveUnix serves exports on a unix socket and returns its path.
func serveUnix(t *testing.T, exports ...Export) string {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Exports = exports
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "nbd.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return sock
}

// client is a minimal NBD client for the tests.
type client struct {
	t    *testing.T
	c    net.Conn
	size uint64
	fl   uint16
	next uint64
}

func be16(b []byte) uint16 { return binary.BigEndian.Uint16(b) }
func be32(b []byte) uint32 { return binary.BigEndian.Uint32(b) }
func be64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

func (cl *client) read(n int) []byte {
	cl.t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(cl.c, b); err != nil {
		cl.t.Fatalf("read %d bytes: %v", n, err)
	}
	return b
}

func (cl *client) option(opt uint32, data []byte) {
	b := binary.BigEndian.AppendUint64(nil, magicOpt)
	b = binary.BigEndian.AppendUint32(b, opt)
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	cl.c.Write(append(b, data...))
}

// optReply returns the reply type and data.
func (cl *client) optReply(opt uint32) (uint32, []byte) {
	cl.t.Helper()
	h := cl.read(20)
	if be64(h) != magicOptReply || be32(h[8:]) != opt {
		cl.t.Fatalf("bad option reply header %x", h)
	}
	return be32(h[12:]), cl.read(int(be32(h[16:])))
}

func dial(t *testing.T, sock string) *client {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { c.Close() })
	cl := &client{t: t, c: c}
	h := cl.read(18)
	if be64(h) != magicNBD || be64(h[8:]) != magicOpt || be16(h[16:]) != flagFixed|flagNoZeroes {
		t.Fatalf("bad greeting %x", h)
	}
	c.Write(binary.BigEndian.AppendUint32(nil, clientFixed|clientNoZeroes))
	return cl
}

func goData(name string, infos ...uint16) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(name)))
	b = append(b, name...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(infos)))
	for _, i := range infos {
		b = binary.BigEndian.AppendUint16(b, i)
	}
	return b
}

// goExport negotiates name with NBD_OPT_GO.
func (cl *client) goExport(name string) {
	cl.t.Helper()
	cl.option(optGo, goData(name, infoBlockSize))
	for {
		typ, data := cl.optReply(optGo)
		switch typ {
		case repInfo:
			if be16(data) == infoExport {
				cl.size, cl.fl = be64(data[2:]), be16(data[10:])
			}
		case repAck:
			return
		default:
			cl.t.Fatalf("GO %q: reply %#x %q", name, typ, data)
		}
	}
}

func (cl *client) cmd(typ, flags uint16, off uint64, length uint32, data []byte) (uint32, []byte) {
	cl.t.Helper()
	cl.next++
	b := binary.BigEndian.AppendUint32(nil, magicRequest)
	b = binary.BigEndian.AppendUint16(b, flags)
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint64(b, cl.next)
	b = binary.BigEndian.AppendUint64(b, off)
	b = binary.BigEndian.AppendUint32(b, length)
	cl.c.Write(append(b, data...))
	if typ == cmdDisc {
		return 0, nil
	}
	h := cl.read(16)
	if be32(h) != magicReply || be64(h[8:]) != cl.next {
		cl.t.Fatalf("bad reply %x", h)
	}
	errno := be32(h[4:])
	if typ == cmdRead && errno == 0 {
		return 0, cl.read(int(length))
	}
	return errno, nil
}

func TestHandshakeAndCommandsOnAFile(t *testing.T) {
	dev, _ := newFile(t, 1<<20)
	ro, _ := newFile(t, 4096)
	sock := serveUnix(t, Export{Name: "disk", Description: "a file", Device: dev}, Export{Name: "ro", Device: ro, ReadOnly: true})

	cl := dial(t, sock)
	cl.option(optList, nil)
	var names []string
	for {
		typ, data := cl.optReply(optList)
		if typ == repAck {
			break
		}
		names = append(names, string(data[4:4+be32(data)]))
	}
	if strings.Join(names, ",") != "disk,ro" {
		t.Errorf("LIST = %v", names)
	}
	cl.option(optInfo, goData("nope"))
	if typ, _ := cl.optReply(optInfo); typ != repErrUnknown {
		t.Errorf("INFO of an unknown export: %#x, want NBD_REP_ERR_UNKNOWN", typ)
	}
	cl.option(8, nil) // STRUCTURED_REPLY
	if typ, _ := cl.optReply(8); typ != repErrUnsup {
		t.Errorf("STRUCTURED_REPLY: %#x, want NBD_REP_ERR_UNSUP", typ)
	}
	cl.goExport("disk")
	if cl.size != 1<<20 || cl.fl&tflagFlush == 0 || cl.fl&tflagTrim == 0 || cl.fl&tflagReadOnly != 0 {
		t.Fatalf("GO: size %d flags %#x", cl.size, cl.fl)
	}
	data := bytes.Repeat([]byte("nbd!"), 2048)
	if errno, _ := cl.cmd(cmdWrite, cmdFlagFUA, 4096, uint32(len(data)), data); errno != 0 {
		t.Fatalf("WRITE errno %d", errno)
	}
	if dev.flushCount() == 0 {
		t.Error("a FUA write did not flush")
	}
	if errno, got := cl.cmd(cmdRead, 0, 4096, uint32(len(data)), nil); errno != 0 || !bytes.Equal(got, data) {
		t.Fatalf("READ errno %d, equal %v", errno, bytes.Equal(got, data))
	}
	if errno, got := cl.cmd(cmdRead, 0, 4097, 3, nil); errno != 0 || string(got) != "bd!" {
		t.Errorf("unaligned READ = %d %q", errno, got)
	}
	if errno, _ := cl.cmd(cmdFlush, 0, 0, 0, nil); errno != 0 {
		t.Errorf("FLUSH errno %d", errno)
	}
	if errno, _ := cl.cmd(cmdTrim, 0, 0, 4096, nil); errno != 0 {
		t.Errorf("TRIM errno %d", errno)
	}
	if errno, _ := cl.cmd(cmdWriteZeroes, 0, 4096, 8, nil); errno != 0 {
		t.Errorf("WRITE_ZEROES errno %d", errno)
	}
	if _, got := cl.cmd(cmdRead, 0, 4096, 12, nil); !bytes.Equal(got, append(make([]byte, 8), "nbd!"...)) {
		t.Errorf("after WRITE_ZEROES: %q", got)
	}
	if errno, _ := cl.cmd(cmdRead, 0, 1<<20-2, 4, nil); errno != errInval {
		t.Errorf("READ past the end: errno %d, want EINVAL", errno)
	}
	if errno, _ := cl.cmd(cmdWrite, 0, 1<<20-2, 4, []byte("xxxx")); errno != errNoSpc {
		t.Errorf("WRITE past the end: errno %d, want ENOSPC", errno)
	}
	cl.cmd(cmdDisc, 0, 0, 0, nil)

	cl = dial(t, sock)
	cl.goExport("ro")
	if cl.fl&tflagReadOnly == 0 {
		t.Error("read-only export without NBD_FLAG_READ_ONLY")
	}
	if errno, _ := cl.cmd(cmdWrite, 0, 0, 1, []byte("x")); errno != errPerm {
		t.Errorf("WRITE to a read-only export: errno %d, want EPERM", errno)
	}

	// Old-style EXPORT_NAME, with the empty name meaning the first export.
	cl = dial(t, sock)
	cl.option(optExportName, nil)
	b := cl.read(10)
	if be64(b) != 1<<20 {
		t.Errorf("EXPORT_NAME size %d", be64(b))
	}
	cl = dial(t, sock)
	cl.option(optAbort, nil)
	if typ, _ := cl.optReply(optAbort); typ != repAck {
		t.Errorf("ABORT reply %#x", typ)
	}
	if _, err := cl.c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("after ABORT the server kept the connection: %v", err)
	}
}

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (apt install qemu-utils libnbd-bin): %v", tool, err)
		}
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestRealNBDClientsAgainstAFile(t *testing.T) {
	need(t, "qemu-img", "qemu-io", "nbdinfo", "nbdcopy")
	dev, _ := newFile(t, 8<<20)
	sock := serveUnix(t, Export{Name: "disk", Device: dev})
	uri := "nbd+unix:///disk?socket=" + sock
	if out := run(t, "nbdinfo", uri); !strings.Contains(out, "export-size: 8388608") {
		t.Errorf("nbdinfo:\n%s", out)
	}
	if out := run(t, "qemu-img", "info", "--output=json", "--image-opts", "driver=nbd,path="+sock+",export=disk"); !strings.Contains(out, `"virtual-size": 8388608`) {
		t.Errorf("qemu-img info:\n%s", out)
	}
	img := "driver=nbd,path=" + sock + ",export=disk"
	run(t, "qemu-io", "--image-opts", img, "-c", "write -P 0xa5 1000 70000", "-c", "flush")
	run(t, "qemu-io", "--image-opts", "-r", img, "-c", "read -P 0xa5 1000 70000", "-c", "read -P 0 0 1000")
	src := filepath.Join(t.TempDir(), "src")
	in := bytes.Repeat([]byte("0123456789abcdef"), 512<<10)
	os.WriteFile(src, in, 0o644)
	run(t, "nbdcopy", src, uri)
	dst := filepath.Join(t.TempDir(), "dst")
	run(t, "nbdcopy", uri, dst)
	got, _ := os.ReadFile(dst)
	if !bytes.Equal(got, in) {
		t.Error("nbdcopy in and out differ")
	}
}
