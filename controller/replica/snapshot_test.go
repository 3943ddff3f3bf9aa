package replica

import (
	"errors"
	"net"
	"path/filepath"
	"testing"
)

func freeRaftAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// A snapshot copied off one cluster and installed into an empty data dir
// starts a new cluster with the old state.
func TestLatestSnapshotInstallsIntoANewCluster(t *testing.T) {
	tc := newTestCluster(t, 3)
	l := tc.leader()
	if _, _, err := tc.reps[l].LatestSnapshot(); !errors.Is(err, ErrNoSnapshot) {
		t.Fatalf("before any snapshot: %v, want ErrNoSnapshot", err)
	}
	for k := 1; k <= 5; k++ {
		tc.write(k)
	}
	if err := tc.reps[l].Snapshot(); err != nil {
		t.Fatal(err)
	}
	info, data, err := tc.reps[l].LatestSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	idx, err := CheckSnapshot(data)
	if err != nil || idx == 0 || info.Index < idx {
		t.Fatalf("snapshot %+v: applied index %d, %v", info, idx, err)
	}
	if _, err := CheckSnapshot(data[:len(data)-3]); err == nil {
		t.Error("a truncated snapshot passes the check")
	}

	dir := filepath.Join(t.TempDir(), "data")
	cfg := fastConfig()
	cfg.ID, cfg.RaftAddr, cfg.DataDir = "r1", freeRaftAddr(t), dir
	if err := InstallSnapshot(dir, []Peer{{ID: cfg.ID, RaftAddr: cfg.RaftAddr}}, info.Index, info.Term, data); err != nil {
		t.Fatal(err)
	}
	if err := InstallSnapshot(dir, []Peer{{ID: cfg.ID, RaftAddr: cfg.RaftAddr}}, info.Index, info.Term, data); err == nil {
		t.Error("a second install into the same dir is accepted")
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Shutdown() })
	waitFor(t, "the restored replica to lead", r.IsLeader)
	if n := nodeCount(r); n != 5 {
		t.Fatalf("restored state has %d nodes, want 5", n)
	}
	// It takes writes.
	if err := register(t.Context(), r, 6); err != nil {
		t.Fatal(err)
	}
	if n := nodeCount(r); n != 6 {
		t.Errorf("after a write: %d nodes, want 6", n)
	}
}
