package replica

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/mvstack/mvstack/controller/state"
)

// ErrNoSnapshot: the replica has taken no snapshot yet.
var ErrNoSnapshot = errors.New("replica: no snapshot yet")

// SnapshotInfo names one raft snapshot.
type SnapshotInfo struct {
	ID    string
	Index uint64
	Term  uint64
}

// LatestSnapshot returns this replica's newest raft snapshot and its
// bytes: the FSM's format (the applied index in 8 big-endian bytes, then
// state.State.Snapshot's). ErrNoSnapshot when there is none.
func (r *Replica) LatestSnapshot() (SnapshotInfo, []byte, error) {
	metas, err := r.snaps.List()
	if err != nil {
		return SnapshotInfo{}, nil, fmt.Errorf("replica: list snapshots: %w", err)
	}
	if len(metas) == 0 {
		return SnapshotInfo{}, nil, ErrNoSnapshot
	}
	m := metas[0] // newest first
	_, rc, err := r.snaps.Open(m.ID)
	if err != nil {
		return SnapshotInfo{}, nil, fmt.Errorf("replica: open snapshot %s: %w", m.ID, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return SnapshotInfo{}, nil, fmt.Errorf("replica: read snapshot %s: %w", m.ID, err)
	}
	return SnapshotInfo{ID: m.ID, Index: m.Index, Term: m.Term}, b, nil
}

// CheckSnapshot checks that data is a snapshot in the FSM's format that
// restores, and returns the state's applied index.
func CheckSnapshot(data []byte) (uint64, error) {
	if len(data) < 8 {
		return 0, fmt.Errorf("replica: snapshot of %d bytes: %w", len(data), io.ErrUnexpectedEOF)
	}
	if _, err := state.Restore(bytes.NewReader(data[8:])); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(data[:8]), nil
}

// InstallSnapshot makes data (a snapshot as LatestSnapshot returns it,
// taken at index and term) the only raft state of dataDir, with peers as
// the cluster's voters: a replica started on dataDir restores it and
// elects a leader among peers. dataDir must hold no raft state yet.
func InstallSnapshot(dataDir string, peers []Peer, index, term uint64, data []byte) error {
	if len(peers) == 0 {
		return errors.New("replica: install snapshot: no peers: name at least this replica")
	}
	if _, err := CheckSnapshot(data); err != nil {
		return fmt.Errorf("replica: install snapshot: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "raft.db")); err == nil {
		return fmt.Errorf("replica: install snapshot: %s already holds raft state (raft.db): restore into an empty data dir", dataDir)
	}
	if ents, _ := os.ReadDir(filepath.Join(dataDir, "snapshots")); len(ents) > 0 {
		return fmt.Errorf("replica: install snapshot: %s already holds snapshots: restore into an empty data dir", dataDir)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("replica: install snapshot: %w", err)
	}
	fs, err := raft.NewFileSnapshotStoreWithLogger(dataDir, 2, hclog.NewNullLogger())
	if err != nil {
		return fmt.Errorf("replica: install snapshot: %w", err)
	}
	var conf raft.Configuration
	for _, p := range peers {
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.RaftAddr)})
	}
	// The store encodes the legacy peer list through a transport; an
	// in-memory one encodes addresses as the TCP transport does.
	_, tr := raft.NewInmemTransport("")
	defer tr.Close()
	sink, err := fs.Create(1, index, term, conf, index, tr)
	if err != nil {
		return fmt.Errorf("replica: install snapshot: %w", err)
	}
	if _, err := sink.Write(data); err != nil {
		sink.Cancel()
		return fmt.Errorf("replica: install snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("replica: install snapshot: %w", err)
	}
	return nil
}
