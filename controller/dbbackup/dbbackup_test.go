package dbbackup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mvstack/mvstack/controller/replica"
	"github.com/mvstack/mvstack/controller/state"
	"github.com/mvstack/mvstack/node/nodeclient"
	"github.com/mvstack/mvstack/proto"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// disk is a volume in memory.
type disk struct {
	mu     sync.Mutex
	b      []byte
	writes int
	failAt int // the write that fails (1-based), 0 none
}

func newDisk(size int) *disk { return &disk{b: make([]byte, size)} }

func (d *disk) ReadAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off+int64(len(p)) > int64(len(d.b)) {
		return 0, io.EOF
	}
	return copy(p, d.b[off:]), nil
}

func (d *disk) WriteAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.writes++
	if d.writes == d.failAt {
		// a torn write: half of it lands
		copy(d.b[off:], p[:len(p)/2])
		return 0, errors.New("replica gone")
	}
	if off+int64(len(p)) > int64(len(d.b)) {
		return 0, io.ErrShortWrite
	}
	return copy(d.b[off:], p), nil
}

func (d *disk) Flush() error { return nil }
func (d *disk) Close() error { return nil }

func TestHeaderRoundTrip(t *testing.T) {
	h := Header{Index: 42, Term: 7, Length: 1000, At: t0, Writer: "c2", Sum: [32]byte{1, 2, 3}}
	b, err := h.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != HeaderSize {
		t.Fatalf("header of %d bytes", len(b))
	}
	var got Header
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(h, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		desc string
		mod  func([]byte) []byte
		want error
	}{
		{"blank", func(b []byte) []byte { return make([]byte, HeaderSize) }, ErrNoImage},
		{"short", func(b []byte) []byte { return b[:100] }, io.ErrUnexpectedEOF},
		{"version 2", func(b []byte) []byte { b[offVersion] = 2; return b }, ErrVersion},
		{"flipped bit", func(b []byte) []byte { b[offIndex] ^= 1; return b }, ErrCorrupt},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var h Header
			if err := h.UnmarshalBinary(tc.mod(bytes.Clone(b))); !errors.Is(err, tc.want) {
				t.Errorf("%v, want %v", err, tc.want)
			}
		})
	}
	if _, err := (Header{Writer: string(make([]byte, MaxWriter+1))}).MarshalBinary(); err == nil {
		t.Error("a writer name above MaxWriter is encoded")
	}
}

func TestTwoSlotsSurviveACopyCutShort(t *testing.T) {
	const size = 64 << 10
	d := newDisk(size)
	if _, _, err := ReadLatest(d, size); !errors.Is(err, ErrNoImage) {
		t.Fatalf("blank volume: %v, want ErrNoImage", err)
	}
	one := bytes.Repeat([]byte("one."), 1000)
	if s, err := Write(d, size, Header{Index: 10, Term: 2, At: t0, Writer: "c1"}, one); err != nil || s != 0 {
		t.Fatalf("first write: slot %d, %v", s, err)
	}
	two := bytes.Repeat([]byte("two!"), 2000)
	if s, err := Write(d, size, Header{Index: 20, Term: 2, At: t0, Writer: "c1"}, two); err != nil || s != 1 {
		t.Fatalf("second write: slot %d, %v", s, err)
	}
	h, p, err := ReadLatest(d, size)
	if err != nil || h.Index != 20 || !bytes.Equal(p, two) {
		t.Fatalf("latest: %+v, %d bytes, %v", h, len(p), err)
	}
	// The third copy goes to slot 0 and is cut short in its payload: the
	// second one is still read.
	d.failAt = d.writes + 1
	if _, err := Write(d, size, Header{Index: 30, At: t0}, bytes.Repeat([]byte("3"), 5000)); err == nil {
		t.Fatal("a failed write reported success")
	}
	h, p, err = ReadLatest(d, size)
	if err != nil || h.Index != 20 || !bytes.Equal(p, two) {
		t.Errorf("after a copy cut short: %+v, %d bytes, %v; want index 20", h, len(p), err)
	}
	if _, err := Write(d, size, Header{Index: 40}, make([]byte, size/2)); !errors.Is(err, ErrTooBig) {
		t.Errorf("a snapshot larger than a slot: %v, want ErrTooBig", err)
	}
}

type snaps struct {
	info replica.SnapshotInfo
	data []byte
}

func (s *snaps) LatestSnapshot() (replica.SnapshotInfo, []byte, error) {
	if s.data == nil {
		return replica.SnapshotInfo{}, nil, replica.ErrNoSnapshot
	}
	return s.info, s.data, nil
}

type store struct{ s *state.State }

func (st store) Read(fn func(*state.State)) { fn(st.s) }

func apply(t *testing.T, s *state.State, c state.Command) any {
	t.Helper()
	b, _ := state.Encode(c)
	res, err := s.Apply(b)
	if err != nil {
		t.Fatalf("%s: %v", c.Type(), err)
	}
	return res
}

func TestBackupCopiesNewSnapshotsToTheDBMetadataVolume(t *testing.T) {
	s := state.New()
	var disks []string
	for i := 1; i <= 2; i++ {
		apply(t, s, state.RegisterNode{At: t0, MAC: proto.MAC{2, 0, 0, 0, 0, byte(i)}, Inventory: state.Inventory{Disks: []state.Disk{{Name: "sda", SizeMB: 1000}}}})
		disks = append(disks, state.DiskID(fmt.Sprintf("%08x", i), "sda"))
	}
	apply(t, s, state.CreateDatastore{At: t0, Name: "plain", Disks: disks[:1], Replicas: 1, Overcommit: 1, TriggerRepair: state.RepairManual, NumOfRepairs: 1})
	apply(t, s, state.CreateVolume{At: t0, Name: "data", Datastore: "1", SizeMB: 1})
	sn := &snaps{}
	var opened []nodeclient.VolumeSpec
	var reserved []string
	d := newDisk(1 << 20)
	b, err := New(Config{Store: store{s}, Snapshots: sn, Interval: time.Minute, Writer: "c1", Now: func() time.Time { return t0 },
		Open: func(ctx context.Context, spec nodeclient.VolumeSpec) (Target, error) {
			opened = append(opened, spec)
			return d, nil
		},
		Reserve: func(ctx context.Context, v string) error { reserved = append(reserved, v); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// No db_metadata volume yet: nothing to do.
	if c, err := b.Once(ctx); c != nil || err != nil {
		t.Fatalf("without a db_metadata volume: %+v %v", c, err)
	}
	apply(t, s, state.CreateDatastore{At: t0, Name: "db", Disks: disks[1:], Replicas: 1, Overcommit: 1, DBMetadata: true, TriggerRepair: state.RepairManual, NumOfRepairs: 1})
	apply(t, s, state.CreateVolume{At: t0, Name: "ctl-db", Datastore: "2", SizeMB: 1})
	// No snapshot yet: nothing to do.
	if c, err := b.Once(ctx); c != nil || err != nil {
		t.Fatalf("without a snapshot: %+v %v", c, err)
	}
	sn.info, sn.data = replica.SnapshotInfo{Index: 5, Term: 1}, []byte("snapshot five")
	c, err := b.Once(ctx)
	if err != nil || c == nil || c.Volume != "2" || c.Header.Index != 5 {
		t.Fatalf("copy: %+v %v", c, err)
	}
	if len(opened) != 1 || opened[0].ID != "2" || len(reserved) != 1 || reserved[0] != "2" {
		t.Errorf("opened %+v reserved %v, want volume 2 once", opened, reserved)
	}
	// The same snapshot is not copied again.
	if c, err := b.Once(ctx); c != nil || err != nil {
		t.Errorf("same snapshot: %+v %v", c, err)
	}
	sn.info, sn.data = replica.SnapshotInfo{Index: 9, Term: 2}, []byte("snapshot nine")
	if c, err := b.Once(ctx); err != nil || c == nil || c.Slot != 1 {
		t.Fatalf("second copy: %+v %v", c, err)
	}
	h, p, err := ReadLatest(d, 1<<20)
	if err != nil || h.Index != 9 || h.Term != 2 || h.Writer != "c1" || string(p) != "snapshot nine" {
		t.Errorf("read back: %+v %q %v", h, p, err)
	}
	// A volume a node uses is not written.
	apply(t, s, state.AttachVolume{At: t0, Volume: "2", Node: "00000001"})
	sn.info = replica.SnapshotInfo{Index: 10, Term: 2}
	if _, err := b.Once(ctx); err == nil || !strings.Contains(err.Error(), "attached to node 00000001") {
		t.Errorf("attached volume: %v", err)
	}
	apply(t, s, state.DetachVolume{At: t0, Volume: "2"})
	// A snapshot the volume cannot hold: an error that says how big to grow it.
	sn.info, sn.data = replica.SnapshotInfo{Index: 12, Term: 2}, make([]byte, 1<<20)
	if _, err := b.Once(ctx); !errors.Is(err, ErrTooBig) {
		t.Errorf("too big: %v", err)
	}
}
