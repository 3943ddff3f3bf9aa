package proto

import (
	"errors"
	"fmt"
)

// Errors of calls and messages. Compare with errors.Is; the errors returned
// are *OpError values that wrap them.
var (
	// ErrPeerDead: nothing authenticated came from the peer within the
	// tolerance while we waited on it.
	ErrPeerDead = errors.New("peer not answering")
	// ErrPeerRestarted: the peer started again (a new epoch) while the
	// call was in flight; the call may or may not have run there.
	ErrPeerRestarted = errors.New("peer restarted")
	// ErrUnauthenticated: the peer refused our frames; the cluster keys
	// differ. Reported when a call fails and the peer said so.
	ErrUnauthenticated = errors.New("peer refused our frames: the cluster keys differ")
	// ErrMessageTooLarge: a message over Config.MaxMessage, ours or the peer's.
	ErrMessageTooLarge = errors.New("message too large")
	// ErrUnknownMethod: the peer has no handler for the method.
	ErrUnknownMethod = errors.New("unknown method")
	// ErrEndpointClosed: the endpoint was closed.
	ErrEndpointClosed = errors.New("endpoint closed")
)

// OpError is the error of a call, message or discovery: the operation, the
// peer, the method and the cause. Deadlines surface as a cause for which
// errors.Is(err, context.DeadlineExceeded) holds.
type OpError struct {
	Op     string // "call", "send", "discover"
	Peer   MAC    // zero for discover
	Method string
	Err    error
}

func (e *OpError) Error() string {
	if e.Peer.IsZero() {
		return fmt.Sprintf("proto: %s %s: %v", e.Op, e.Method, e.Err)
	}
	return fmt.Sprintf("proto: %s %s to %s: %v", e.Op, e.Method, e.Peer, e.Err)
}

func (e *OpError) Unwrap() error { return e.Err }

// RemoteError is an error a handler returned, carried back to the caller.
type RemoteError struct {
	Code    ErrorCode
	Message string
}

// ErrorCode classifies a remote error.
type ErrorCode uint8

// Remote error codes.
const (
	CodeHandler       ErrorCode = 1 // the handler returned an error
	CodeUnknownMethod ErrorCode = 2 // no handler for the method
	CodeBadRequest    ErrorCode = 3 // the request did not decode
	CodeTooLarge      ErrorCode = 4 // the request was over the peer's limit
)

func (e *RemoteError) Error() string { return e.Message }

// Is makes errors.Is(err, ErrUnknownMethod) and ErrMessageTooLarge work on
// remote errors of those kinds.
func (e *RemoteError) Is(target error) bool {
	switch target {
	case ErrUnknownMethod:
		return e.Code == CodeUnknownMethod
	case ErrMessageTooLarge:
		return e.Code == CodeTooLarge
	}
	return false
}

// BadRequest wraps err so that the caller sees a RemoteError with
// CodeBadRequest: the handler could not make sense of the request.
func BadRequest(err error) error { return badRequestError{err} }

type badRequestError struct{ err error }

func (e badRequestError) Error() string { return e.err.Error() }
func (e badRequestError) Unwrap() error { return e.err }
