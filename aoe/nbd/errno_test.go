package nbd

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/mvstack/mvstack/aoe/initiator"
	"github.com/mvstack/mvstack/aoe/target"
	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/proto/linktest"
)

func TestDeviceErrorsMapToNBDErrors(t *testing.T) {
	for _, c := range []struct {
		desc string
		err  error
		want uint32
	}{
		{"ENOSPC from a file", fmt.Errorf("write: %w", syscall.ENOSPC), errNoSpc},
		{"AoE vendor no-space", &initiator.Error{Op: "write", Err: initiator.ErrNoSpace}, errNoSpc},
		{"EDQUOT", syscall.EDQUOT, errNoSpc},
		{"EPERM", syscall.EPERM, errPerm},
		{"EROFS", fmt.Errorf("x: %w", syscall.EROFS), errPerm},
		{"EINVAL", syscall.EINVAL, errInval},
		{"stale epoch (fenced)", &initiator.Error{Op: "write", Err: initiator.ErrStaleEpoch}, errIO},
		{"medium error", &initiator.Error{Op: "read", Err: initiator.ErrMedium}, errIO},
		{"anything else", errors.New("boom"), errIO},
	} {
		t.Run(c.desc, func(t *testing.T) {
			if got := errno(c.err); got != c.want {
				t.Errorf("errno(%v) = %d, want %d", c.err, got, c.want)
			}
		})
	}
}

// fullBackend is an AoE backend out of space, as a thin pool without free
// chunks.
type fullBackend struct{ b []byte }

func (f *fullBackend) ReadAt(p []byte, off int64) (int, error) { return copy(p, f.b[off:]), nil }
func (f *fullBackend) WriteAt([]byte, int64) (int, error)      { return 0, syscall.ENOSPC }
func (f *fullBackend) Size() int64                             { return int64(len(f.b)) }
func (f *fullBackend) Sync() error                             { return nil }

// TestNoSpaceThroughAoEIsNBDENOSPC serves an AoE device whose target's
// backend is full and checks an NBD client's write gets ENOSPC (28) and its
// read still works.
func TestNoSpaceThroughAoEIsNBDENOSPC(t *testing.T) {
	sw := linktest.NewSwitch(linktest.Config{MTU: 9000})
	t.Cleanup(func() { sw.Close() })
	ec := target.DefaultExportConfig()
	ec.Shelf, ec.Slot, ec.Backend, ec.Epoch = 1, 1, &fullBackend{b: make([]byte, 1<<20)}, 1
	srv, err := target.NewServer(sw.Link(proto.MAC{2, 0, 0, 0, 0, 1}, proto.EtherTypeAoE), target.DefaultConfig(), ec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	icfg := initiator.DefaultConfig()
	icfg.Links = []proto.Link{sw.Link(proto.MAC{2, 0, 0, 0, 0, 9}, proto.EtherTypeAoE)}
	in, err := initiator.New(icfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	d, err := in.Open(ctx, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetEpoch(ctx, 1); err != nil {
		t.Fatal(err)
	}
	cl := dial(t, serveUnix(t, Export{Name: "aoe", Device: d}))
	cl.goExport("aoe")
	if errno, _ := cl.cmd(cmdWrite, 0, 0, 4096, make([]byte, 4096)); errno != errNoSpc {
		t.Errorf("WRITE to a full thin export: errno %d, want ENOSPC (28)", errno)
	}
	if errno, _ := cl.cmd(cmdRead, 0, 0, 4096, nil); errno != 0 {
		t.Errorf("READ from a full thin export: errno %d", errno)
	}
	cl.cmd(cmdDisc, 0, 0, 0, nil)
}
