package nodeclient

import (
	"errors"
	"fmt"

	"github.com/mvstack/mvstack/node/domain"
)

// ErrStaleTerm is matched by the error of a request whose term is lower
// than the highest the node has seen.
var ErrStaleTerm = errors.New("nodeclient: term older than the node's")

// Code classifies a node's refusal.
type Code uint8

// Codes. Each but CodeInternal maps to a sentinel (see [Error.Is]).
const (
	CodeInternal    Code = iota + 1 // anything else: read the message
	CodeInvalid                     // domain.ErrInvalidSpec
	CodeTopology                    // domain.ErrTopology
	CodeExists                      // domain.ErrExists
	CodeNotFound                    // domain.ErrNotFound
	CodeState                       // domain.ErrState
	CodeNoCPU                       // domain.ErrNoCPU
	CodeNoMemory                    // domain.ErrNoMemory
	CodeDiskBusy                    // domain.ErrDiskBusy
	CodeUnsupported                 // domain.ErrUnsupported
	CodeStaleTerm                   // ErrStaleTerm
	CodeStaleEpoch                  // ErrStaleEpoch (a volume's epoch moved on)
)

var codeErrs = map[Code]error{
	CodeInvalid: domain.ErrInvalidSpec, CodeTopology: domain.ErrTopology, CodeExists: domain.ErrExists,
	CodeNotFound: domain.ErrNotFound, CodeState: domain.ErrState, CodeNoCPU: domain.ErrNoCPU,
	CodeNoMemory: domain.ErrNoMemory, CodeDiskBusy: domain.ErrDiskBusy, CodeUnsupported: domain.ErrUnsupported,
	CodeStaleTerm: ErrStaleTerm, CodeStaleEpoch: ErrStaleEpoch,
}

// Error is a node's refusal of a request, as the caller sees it.
type Error struct {
	Code Code `cbor:"1,keyasint"`
	// Message is the node's own words, with the numbers ("dn5 wants
	// 300 MiB memory, node 7a77f9af has 256 MiB, 100 MiB free").
	Message string `cbor:"2,keyasint"`
	// Term is the node's highest term, for CodeStaleTerm.
	Term uint64 `cbor:"3,keyasint,omitempty"`
}

func (e *Error) Error() string { return e.Message }

// Is matches the sentinel of the error's code.
func (e *Error) Is(target error) bool {
	s, ok := codeErrs[e.Code]
	return ok && s == target
}

// StaleTermError is returned by a node for a term below its highest.
type StaleTermError struct {
	Got, Highest uint64
}

func (e *StaleTermError) Error() string {
	return fmt.Sprintf("refused: term %d is older than term %d, the highest this node has seen (a newer controller leader exists)", e.Got, e.Highest)
}

// Unwrap returns ErrStaleTerm.
func (e *StaleTermError) Unwrap() error { return ErrStaleTerm }

// ErrorOf turns a handler's error into its wire form. Node side.
func ErrorOf(err error) *Error {
	if err == nil {
		return nil
	}
	out := &Error{Code: CodeInternal, Message: err.Error()}
	var st *StaleTermError
	if errors.As(err, &st) {
		out.Code, out.Term = CodeStaleTerm, st.Highest
		return out
	}
	// The topology rule is also an invalid spec; report the narrower code.
	for _, c := range []Code{CodeTopology, CodeInvalid, CodeExists, CodeNotFound, CodeState, CodeNoCPU,
		CodeNoMemory, CodeDiskBusy, CodeUnsupported, CodeStaleEpoch} {
		if errors.Is(err, codeErrs[c]) {
			out.Code = c
			break
		}
	}
	return out
}
