package state

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"
)

// MaxEvents bounds the events log; the oldest entries go first.
const MaxEvents = 10000

// SnapshotVersion is the only snapshot encoding version this code restores.
const SnapshotVersion byte = 1

// Errors Apply returns. They are deterministic: every replica returns the
// same one for the same command.
var (
	ErrNotFound = errors.New("state: not found")
	ErrInvalid  = errors.New("state: invalid command")
)

// State is the whole replicated state. It is not safe for concurrent use;
// the raft FSM serialises Apply and guards reads. Apply never mutates a
// Node, Datastore or Volume value in place (it replaces the pointer), so a
// pointer handed out stays unchanged.
type State struct {
	Nodes    map[string]*Node
	Tokens   map[string]Token
	Replicas map[string]Replica
	Events   []Event
	NextSeq  uint64
	// Storage (storage.go). Ids are decimal counters.
	Datastores    map[string]*Datastore
	Volumes       map[string]*Volume
	NextDatastore uint64
	NextVolume    uint64
}

// New returns an empty state.
func New() *State {
	return &State{
		Nodes:    map[string]*Node{},
		Tokens:   map[string]Token{},
		Replicas: map[string]Replica{},
		NextSeq:  1,

		Datastores: map[string]*Datastore{},
		Volumes:    map[string]*Volume{},
	}
}

// Apply decodes and applies one log entry. It returns the command's result
// (a Node, Token, Replica, Datastore or Volume value, or nil) or an error wrapping ErrNotFound,
// ErrInvalid, ErrTransition or a decoding error.
func (s *State) Apply(b []byte) (any, error) {
	c, err := Decode(b)
	if err != nil {
		return nil, err
	}
	return s.ApplyCommand(c)
}

// ApplyCommand applies a decoded command.
func (s *State) ApplyCommand(c Command) (any, error) {
	switch c := c.(type) {
	case RegisterNode:
		return s.registerNode(c)
	case RemoveNode:
		if _, ok := s.Nodes[c.Node]; !ok {
			return nil, fmt.Errorf("%w: node %q", ErrNotFound, c.Node)
		}
		delete(s.Nodes, c.Node)
		s.event(c.At, "node_removed", c.Node, "node removed")
		return nil, nil
	case SetAdmin:
		n, ok := s.Nodes[c.Node]
		if !ok {
			return nil, fmt.Errorf("%w: node %q", ErrNotFound, c.Node)
		}
		if err := CheckAdminTransition(n.Admin, c.State); err != nil {
			return nil, err
		}
		if n.Admin == c.State {
			return *n, nil
		}
		m := *n
		from := m.State()
		m.Admin = c.State
		if c.State == AdminOffline {
			m.Health, m.Reason = HealthOK, ""
		}
		m.Updated = c.At
		s.Nodes[m.ID] = &m
		s.event(c.At, "state", m.ID, fmt.Sprintf("%s -> %s (operator)", from, m.State()))
		return m, nil
	case SetHealth:
		n, ok := s.Nodes[c.Node]
		if !ok {
			return nil, fmt.Errorf("%w: node %q", ErrNotFound, c.Node)
		}
		if err := CheckHealthTransition(n.Admin, n.Health, c.Health); err != nil {
			return nil, err
		}
		m := *n
		from := m.State()
		m.Health, m.Reason, m.Updated = c.Health, c.Reason, c.At
		s.Nodes[m.ID] = &m
		msg := fmt.Sprintf("%s -> %s", from, m.State())
		if c.Reason != "" {
			msg += ": " + c.Reason
		}
		s.event(c.At, "state", m.ID, msg)
		return m, nil
	case UpdateMonitoring:
		n, ok := s.Nodes[c.Node]
		if !ok {
			return nil, fmt.Errorf("%w: node %q", ErrNotFound, c.Node)
		}
		m := *n
		m.Monitoring = c.Monitoring
		m.Monitoring.At = c.At
		if m.Admin == AdminFlush && c.Monitoring.AllocCPU == 0 && c.Monitoring.AllocMemKB == 0 {
			m.Admin = AdminDisabled
			s.event(c.At, "state", m.ID, "flush -> disabled (nothing left on the host)")
		}
		s.Nodes[m.ID] = &m
		return m, nil
	case CreateToken:
		if c.ID == "" || len(c.Hash) != 32 {
			return nil, fmt.Errorf("%w: token needs an id and a 32-byte SHA-256 hash", ErrInvalid)
		}
		if _, dup := s.Tokens[c.ID]; dup {
			return nil, fmt.Errorf("%w: token %q exists", ErrInvalid, c.ID)
		}
		t := Token{ID: c.ID, Name: c.Name, Hash: bytes.Clone(c.Hash), Created: c.At}
		s.Tokens[c.ID] = t
		s.event(c.At, "token_created", "", fmt.Sprintf("token %s (%s) created", c.ID, c.Name))
		return t, nil
	case RevokeToken:
		if _, ok := s.Tokens[c.ID]; !ok {
			return nil, fmt.Errorf("%w: token %q", ErrNotFound, c.ID)
		}
		delete(s.Tokens, c.ID)
		s.event(c.At, "token_revoked", "", fmt.Sprintf("token %s revoked", c.ID))
		return nil, nil
	case SetReplica:
		if c.ID == "" {
			return nil, fmt.Errorf("%w: replica needs an id", ErrInvalid)
		}
		r := Replica{ID: c.ID, APIAddr: c.APIAddr}
		s.Replicas[c.ID] = r
		return r, nil
	case RemoveReplica:
		delete(s.Replicas, c.ID)
		return nil, nil
	case CreateDatastore:
		return s.createDatastore(c)
	case DeleteDatastore:
		return s.deleteDatastore(c)
	case AddDisks:
		return s.addDisks(c)
	case RemoveDisks:
		return s.removeDisks(c)
	case CreateVolume:
		return s.createVolume(c)
	case DeleteVolume:
		return s.deleteVolume(c)
	case ResizeVolume:
		return s.resizeVolume(c)
	case SetVolumeEpoch:
		return s.setVolumeEpoch(c)
	case SetInSync:
		return s.setInSync(c)
	case AttachVolume:
		return s.attachVolume(c)
	case DetachVolume:
		return s.detachVolume(c)
	case RecordRepair:
		return s.recordRepair(c)
	}
	return nil, fmt.Errorf("%w: %T", ErrUnknownCommand, c)
}

func (s *State) registerNode(c RegisterNode) (any, error) {
	if c.MAC.IsZero() || c.MAC.IsMulticast() {
		return nil, fmt.Errorf("%w: mac %s is not a unicast address", ErrInvalid, c.MAC)
	}
	id := c.MAC.NodeID()
	if n, ok := s.Nodes[id]; ok {
		if n.MAC != c.MAC {
			return nil, fmt.Errorf("%w: node id %s is taken by %s", ErrInvalid, id, n.MAC)
		}
		m := *n
		m.Inventory, m.Updated = c.Inventory, c.At
		s.Nodes[id] = &m
		s.event(c.At, "node_updated", id, "inventory changed")
		return m, nil
	}
	n := &Node{ID: id, MAC: c.MAC, Admin: AdminEnabled, Health: HealthOK, Inventory: c.Inventory, Registered: c.At, Updated: c.At}
	s.Nodes[id] = n
	s.event(c.At, "node_registered", id, fmt.Sprintf("node %s (%s) registered", id, c.Inventory.Hostname))
	return *n, nil
}

func (s *State) event(at time.Time, kind, node, msg string) {
	e := Event{Seq: s.NextSeq, At: at, Kind: kind, Node: node, Message: msg}
	s.NextSeq++
	s.Events = append(s.Events, e)
	if over := len(s.Events) - MaxEvents; over > 0 {
		s.Events = append([]Event(nil), s.Events[over:]...)
	}
}

// SortedNodes returns the nodes in id order.
func (s *State) SortedNodes() []*Node {
	ns := make([]*Node, 0, len(s.Nodes))
	for _, n := range s.Nodes {
		ns = append(ns, n)
	}
	sort.Slice(ns, func(i, j int) bool { return ns[i].ID < ns[j].ID })
	return ns
}

// CheckToken reports the token whose id and secret hash match.
func (s *State) CheckToken(id string, hash []byte) (Token, bool) {
	t, ok := s.Tokens[id]
	if !ok || subtle.ConstantTimeCompare(t.Hash, hash) != 1 {
		return Token{}, false
	}
	return t, true
}

// Snapshot writes the state.
func (s *State) Snapshot(w io.Writer) error {
	b, err := cb.enc.Marshal(s)
	if err != nil {
		return fmt.Errorf("state: snapshot: %w", err)
	}
	if _, err := w.Write(append([]byte{SnapshotVersion}, b...)); err != nil {
		return fmt.Errorf("state: snapshot: %w", err)
	}
	return nil
}

// Restore reads a snapshot written by Snapshot into a new State.
func Restore(r io.Reader) (*State, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("state: restore: %w", err)
	}
	if len(b) < 1 {
		return nil, fmt.Errorf("state: restore: %w", io.ErrUnexpectedEOF)
	}
	if b[0] != SnapshotVersion {
		return nil, fmt.Errorf("state: restore: %w: snapshot version %d", ErrUnknownVersion, b[0])
	}
	s, err := decodeAs[State](b[1:])
	if err != nil {
		return nil, fmt.Errorf("state: restore: %w: %w", ErrMalformed, err)
	}
	if s.Nodes == nil {
		s.Nodes = map[string]*Node{}
	}
	if s.Tokens == nil {
		s.Tokens = map[string]Token{}
	}
	if s.Replicas == nil {
		s.Replicas = map[string]Replica{}
	}
	if s.Datastores == nil {
		s.Datastores = map[string]*Datastore{}
	}
	if s.Volumes == nil {
		s.Volumes = map[string]*Volume{}
	}
	return &s, nil
}
