package replica

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"
	"github.com/mvstack/mvstack/controller/state"
)

// fsm adapts state.State to raft.FSM. It tracks the index of the last
// entry it applied (raft's own AppliedIndex runs ahead of the FSM), and
// snapshots carry that index in an 8-byte big-endian prefix.
type fsm struct {
	mu    sync.RWMutex
	s     *state.State
	index uint64
}

var (
	_ raft.FSM         = (*fsm)(nil)
	_ raft.FSMSnapshot = (*snapshot)(nil)
)

// applyResult is what Apply returns through the ApplyFuture.
type applyResult struct {
	v   any
	err error
}

func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		f.mu.Lock()
		f.index = l.Index
		f.mu.Unlock()
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.index = l.Index
	v, err := f.s.Apply(l.Data)
	return applyResult{v, err}
}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var b bytes.Buffer
	b.Write(binary.BigEndian.AppendUint64(nil, f.index))
	if err := f.s.Snapshot(&b); err != nil {
		return nil, err
	}
	return &snapshot{b: b.Bytes()}, nil
}

func (f *fsm) Restore(r io.ReadCloser) error {
	defer r.Close()
	var idx [8]byte
	if _, err := io.ReadFull(r, idx[:]); err != nil {
		return fmt.Errorf("replica: restore: snapshot index: %w", err)
	}
	s, err := state.Restore(r)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.s, f.index = s, binary.BigEndian.Uint64(idx[:])
	f.mu.Unlock()
	return nil
}

type snapshot struct{ b []byte }

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s.b); err != nil {
		sink.Cancel()
		return fmt.Errorf("replica: persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *snapshot) Release() {}
