package state

import (
	"fmt"
	"strings"
	"time"
)

// Attachments and repair records (docs/storage.md, "Using a volume").

// AttachVolume records that Node uses a volume: it opens the volume client
// and writes to the replicas. A volume is attached to at most one node.
// Attaching it to another node needs Force, which the proposer uses only
// after fencing the old writer (the controller raises the epoch first).
// Attaching to the node it is attached to is a no-op.
type AttachVolume struct {
	At     time.Time
	Volume string
	Node   string
	Force  bool
}

// DetachVolume records that a volume is no longer used. With Node set it
// applies only while the volume is attached to that node (a fence of a
// node that has since lost the volume changes nothing); detaching a volume
// that is not attached is a no-op.
type DetachVolume struct {
	At     time.Time
	Volume string
	Node   string
}

// Repair is what the last repair of a volume did: the node's resync report
// as the controller received it.
type Repair struct {
	// Node is the stale replica's node; Repairer the node that copied.
	Node     string `json:"node"`
	Repairer string `json:"repairer"`
	// Full is true when every block was copied (no bitmap).
	Full bool `json:"full"`
	// Dirty is the number of dirty blocks when it began; Blocks and Bytes
	// what it copied.
	Dirty    int           `json:"dirty"`
	Blocks   int           `json:"blocks"`
	Bytes    int64         `json:"bytes"`
	Duration time.Duration `json:"duration_ns"`
	// Epoch is the volume's epoch after the replica rejoined.
	Epoch uint64    `json:"epoch"`
	At    time.Time `json:"at"`
	// Error says why the repair failed; empty when it succeeded.
	Error string `json:"error,omitempty"`
}

// RecordRepair stores the outcome of a volume's latest repair.
type RecordRepair struct {
	At     time.Time
	Volume string
	Repair Repair
}

func (AttachVolume) Type() CommandType { return TypeAttachVolume }
func (DetachVolume) Type() CommandType { return TypeDetachVolume }
func (RecordRepair) Type() CommandType { return TypeRecordRepair }

var (
	_ Command = AttachVolume{}
	_ Command = DetachVolume{}
	_ Command = RecordRepair{}
)

func (s *State) attachVolume(c AttachVolume) (any, error) {
	v, err := s.volume(c.Volume)
	if err != nil {
		return nil, err
	}
	n, ok := s.Nodes[c.Node]
	switch {
	case strings.TrimSpace(c.Node) == "":
		return nil, fieldErr("node", fmt.Errorf("%w: node is empty: name the node that uses the volume", ErrInvalid))
	case !ok:
		return nil, fieldErr("node", fmt.Errorf("%w: node %s is not registered (see GET /api/nodes)", ErrInvalid, c.Node))
	case n.State() != HostEnabled:
		return nil, fieldErr("node", fmt.Errorf("%w: node %s is %s: only an enabled node takes a volume", ErrInvalid, n.ID, n.State()))
	}
	if v.AttachedTo == c.Node {
		return *v, nil
	}
	if v.AttachedTo != "" && !c.Force {
		return nil, fieldErr("node", fmt.Errorf("%w: volume %s (%s) is attached to node %s: detach it first, or force (which fences node %s)",
			ErrInvalid, v.ID, v.Name, v.AttachedTo, v.AttachedTo))
	}
	m := *v
	m.AttachedTo, m.Updated = c.Node, c.At
	s.Volumes[m.ID] = &m
	msg := fmt.Sprintf("volume %s (%s) attached to node %s", m.ID, m.Name, c.Node)
	if v.AttachedTo != "" {
		msg += fmt.Sprintf(" (forced away from node %s)", v.AttachedTo)
	}
	s.event(c.At, "volume_attached", c.Node, msg)
	return m, nil
}

func (s *State) detachVolume(c DetachVolume) (any, error) {
	v, err := s.volume(c.Volume)
	if err != nil {
		return nil, err
	}
	if v.AttachedTo == "" || (c.Node != "" && v.AttachedTo != c.Node) {
		return *v, nil
	}
	m := *v
	m.AttachedTo, m.Updated = "", c.At
	s.Volumes[m.ID] = &m
	s.event(c.At, "volume_detached", v.AttachedTo, fmt.Sprintf("volume %s (%s) detached from node %s", m.ID, m.Name, v.AttachedTo))
	return m, nil
}

func (s *State) recordRepair(c RecordRepair) (any, error) {
	v, err := s.volume(c.Volume)
	if err != nil {
		return nil, err
	}
	m := *v
	r := c.Repair
	m.LastRepair = &r
	s.Volumes[m.ID] = &m
	msg := fmt.Sprintf("volume %s (%s): replica on node %s repaired by node %s: %d blocks, %d bytes in %v", m.ID, m.Name, r.Node, r.Repairer, r.Blocks, r.Bytes, r.Duration)
	if r.Full {
		msg += " (full resync)"
	}
	if r.Error != "" {
		msg = fmt.Sprintf("volume %s (%s): repair of the replica on node %s by node %s failed: %s", m.ID, m.Name, r.Node, r.Repairer, r.Error)
	}
	s.event(c.At, "volume_repair", r.Node, msg)
	return m, nil
}
