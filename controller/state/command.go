package state

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/mvstack/mvstack/proto"
)

// CommandVersion is the only command encoding version this code applies.
const CommandVersion byte = 1

// CommandType names a command.
type CommandType uint8

// Command types. Numbers are part of the log format: never reuse one.
const (
	TypeRegisterNode     CommandType = 1
	TypeRemoveNode       CommandType = 2
	TypeSetAdmin         CommandType = 3
	TypeSetHealth        CommandType = 4
	TypeUpdateMonitoring CommandType = 5
	TypeCreateToken      CommandType = 6
	TypeRevokeToken      CommandType = 7
	TypeSetReplica       CommandType = 8
	TypeRemoveReplica    CommandType = 9
	TypeCreateDatastore  CommandType = 10
	TypeDeleteDatastore  CommandType = 11
	TypeAddDisks         CommandType = 12
	TypeRemoveDisks      CommandType = 13
	TypeCreateVolume     CommandType = 14
	TypeDeleteVolume     CommandType = 15
	TypeResizeVolume     CommandType = 16
	TypeSetVolumeEpoch   CommandType = 17
	TypeSetInSync        CommandType = 18
	TypeAttachVolume     CommandType = 19
	TypeDetachVolume     CommandType = 20
	TypeRecordRepair     CommandType = 21
)

func (t CommandType) String() string {
	switch t {
	case TypeRegisterNode:
		return "register_node"
	case TypeRemoveNode:
		return "remove_node"
	case TypeSetAdmin:
		return "set_admin"
	case TypeSetHealth:
		return "set_health"
	case TypeUpdateMonitoring:
		return "update_monitoring"
	case TypeCreateToken:
		return "create_token"
	case TypeRevokeToken:
		return "revoke_token"
	case TypeSetReplica:
		return "set_replica"
	case TypeRemoveReplica:
		return "remove_replica"
	case TypeCreateDatastore:
		return "create_datastore"
	case TypeDeleteDatastore:
		return "delete_datastore"
	case TypeAddDisks:
		return "add_disks"
	case TypeRemoveDisks:
		return "remove_disks"
	case TypeCreateVolume:
		return "create_volume"
	case TypeDeleteVolume:
		return "delete_volume"
	case TypeResizeVolume:
		return "resize_volume"
	case TypeSetVolumeEpoch:
		return "set_volume_epoch"
	case TypeSetInSync:
		return "set_in_sync"
	case TypeAttachVolume:
		return "attach_volume"
	case TypeDetachVolume:
		return "detach_volume"
	case TypeRecordRepair:
		return "record_repair"
	}
	return fmt.Sprintf("command(%d)", uint8(t))
}

// Errors of decoding.
var (
	ErrUnknownVersion = errors.New("state: unknown command version")
	ErrUnknownCommand = errors.New("state: unknown command type")
	ErrMalformed      = errors.New("state: malformed command")
)

// Command is one typed state change. At is chosen by the proposer.
type Command interface {
	Type() CommandType
}

// RegisterNode adds a node or updates its inventory (hardware changed).
type RegisterNode struct {
	At        time.Time
	MAC       proto.MAC
	Inventory Inventory
}

// RemoveNode deletes a node.
type RemoveNode struct {
	At   time.Time
	Node string
}

// SetAdmin sets a node's operator mode.
type SetAdmin struct {
	At    time.Time
	Node  string
	State AdminState
}

// SetHealth records a liveness conclusion.
type SetHealth struct {
	At     time.Time
	Node   string
	Health Health
	Reason string
}

// UpdateMonitoring records a node's latest monitoring figures.
type UpdateMonitoring struct {
	At         time.Time
	Node       string
	Monitoring Monitoring
}

// CreateToken stores a token's hash.
type CreateToken struct {
	At   time.Time
	ID   string
	Name string
	Hash []byte
}

// RevokeToken deletes a token.
type RevokeToken struct {
	At time.Time
	ID string
}

// SetReplica records a replica's API address.
type SetReplica struct {
	At      time.Time
	ID      string
	APIAddr string
}

// RemoveReplica forgets a replica.
type RemoveReplica struct {
	At time.Time
	ID string
}

func (RegisterNode) Type() CommandType     { return TypeRegisterNode }
func (RemoveNode) Type() CommandType       { return TypeRemoveNode }
func (SetAdmin) Type() CommandType         { return TypeSetAdmin }
func (SetHealth) Type() CommandType        { return TypeSetHealth }
func (UpdateMonitoring) Type() CommandType { return TypeUpdateMonitoring }
func (CreateToken) Type() CommandType      { return TypeCreateToken }
func (RevokeToken) Type() CommandType      { return TypeRevokeToken }
func (SetReplica) Type() CommandType       { return TypeSetReplica }
func (RemoveReplica) Type() CommandType    { return TypeRemoveReplica }

var (
	_ Command = RegisterNode{}
	_ Command = RemoveNode{}
	_ Command = SetAdmin{}
	_ Command = SetHealth{}
	_ Command = UpdateMonitoring{}
	_ Command = CreateToken{}
	_ Command = RevokeToken{}
	_ Command = SetReplica{}
	_ Command = RemoveReplica{}
)

// codec holds the immutable CBOR modes.
type codec struct {
	enc cbor.EncMode
	dec cbor.DecMode
}

func newCodec() codec {
	eo := cbor.CoreDetEncOptions()
	eo.Time = cbor.TimeRFC3339NanoUTC
	enc, err := eo.EncMode()
	if err != nil {
		panic(err) // static options
	}
	dec, err := cbor.DecOptions{
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return codec{enc, dec}
}

var cb = newCodec() // immutable after init

// Encode returns the log bytes of c.
func Encode(c Command) ([]byte, error) {
	body, err := cb.enc.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("state: encode %s: %w", c.Type(), err)
	}
	return append([]byte{CommandVersion, byte(c.Type())}, body...), nil
}

// Decode parses log bytes into a command.
func Decode(b []byte) (Command, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: %d bytes: %w", ErrMalformed, len(b), io.ErrUnexpectedEOF)
	}
	if b[0] != CommandVersion {
		return nil, fmt.Errorf("%w: %d (this build applies version %d)", ErrUnknownVersion, b[0], CommandVersion)
	}
	t := CommandType(b[1])
	var c Command
	var err error
	switch t {
	case TypeRegisterNode:
		c, err = decodeAs[RegisterNode](b[2:])
	case TypeRemoveNode:
		c, err = decodeAs[RemoveNode](b[2:])
	case TypeSetAdmin:
		c, err = decodeAs[SetAdmin](b[2:])
	case TypeSetHealth:
		c, err = decodeAs[SetHealth](b[2:])
	case TypeUpdateMonitoring:
		c, err = decodeAs[UpdateMonitoring](b[2:])
	case TypeCreateToken:
		c, err = decodeAs[CreateToken](b[2:])
	case TypeRevokeToken:
		c, err = decodeAs[RevokeToken](b[2:])
	case TypeSetReplica:
		c, err = decodeAs[SetReplica](b[2:])
	case TypeRemoveReplica:
		c, err = decodeAs[RemoveReplica](b[2:])
	case TypeCreateDatastore:
		c, err = decodeAs[CreateDatastore](b[2:])
	case TypeDeleteDatastore:
		c, err = decodeAs[DeleteDatastore](b[2:])
	case TypeAddDisks:
		c, err = decodeAs[AddDisks](b[2:])
	case TypeRemoveDisks:
		c, err = decodeAs[RemoveDisks](b[2:])
	case TypeCreateVolume:
		c, err = decodeAs[CreateVolume](b[2:])
	case TypeDeleteVolume:
		c, err = decodeAs[DeleteVolume](b[2:])
	case TypeResizeVolume:
		c, err = decodeAs[ResizeVolume](b[2:])
	case TypeSetVolumeEpoch:
		c, err = decodeAs[SetVolumeEpoch](b[2:])
	case TypeSetInSync:
		c, err = decodeAs[SetInSync](b[2:])
	case TypeAttachVolume:
		c, err = decodeAs[AttachVolume](b[2:])
	case TypeDetachVolume:
		c, err = decodeAs[DetachVolume](b[2:])
	case TypeRecordRepair:
		c, err = decodeAs[RecordRepair](b[2:])
	default:
		return nil, fmt.Errorf("%w: %d", ErrUnknownCommand, b[1])
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrMalformed, t, err)
	}
	return c, nil
}

func decodeAs[T any](b []byte) (T, error) {
	var v T
	rest, err := cb.dec.UnmarshalFirst(b, &v)
	if err != nil {
		return v, err
	}
	if len(rest) != 0 {
		return v, fmt.Errorf("%d trailing bytes", len(rest))
	}
	return v, nil
}
