package perfc

import (
	"fmt"
	"strings"
)

// Op is what a PERFC request asks for.
type Op uint8

// The PERFC operations (seed 003 §2.6.2: --perfc-dump, --perfc-get NAME,
// --perf-reset).
const (
	OpDump  Op = 1 // every metric the query selects
	OpGet   Op = 2 // the metric named Query.Prefix and those below it; none is an error
	OpReset Op = 3 // zero what the query selects and return what it held
)

var opNames = []string{"", "dump", "get", "reset"}

func (o Op) String() string { return enumString(opNames, o, "op") }

// Request is the payload of PERFC_DUMP, PERFC_GET and PERFC_RESET: which
// set (the node's, or a domain's) and which metrics. It marshals as CBOR
// with integer keys: {1: op, 2: domain, 3: query}.
type Request struct {
	Op Op `cbor:"1,keyasint" json:"op"`
	// Domain is the child set to answer from ("dn5"; "dn5/x" for deeper
	// sets); "" is the node's own set, with its domains unless Query.Local.
	Domain string `cbor:"2,keyasint,omitempty" json:"domain,omitempty"`
	Query  Query  `cbor:"3,keyasint" json:"query"`
}

type requestWire Request

// MarshalBinary encodes the request as CBOR.
func (r Request) MarshalBinary() ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return cborEnc.Marshal(requestWire(r))
}

// UnmarshalBinary decodes a request: io.ErrUnexpectedEOF on truncated
// input, an error wrapping ErrInvalid for an unknown op or a bad domain or
// prefix.
func (r *Request) UnmarshalBinary(b []byte) error {
	var v requestWire
	if err := decode(b, &v, "request"); err != nil {
		return err
	}
	if err := Request(v).Validate(); err != nil {
		return err
	}
	*r = Request(v)
	return nil
}

// Validate reports an unknown op, a domain path that names no possible
// child set, or a prefix that is not a metric name.
func (r Request) Validate() error {
	if r.Op < OpDump || r.Op > OpReset {
		return fmt.Errorf("perfc: request op %d: %w", r.Op, ErrInvalid)
	}
	if r.Domain != "" {
		for seg := range strings.SplitSeq(r.Domain, "/") {
			if !validChild(seg) {
				return fmt.Errorf("perfc: request domain %q: %w", r.Domain, ErrInvalid)
			}
		}
	}
	if r.Query.Prefix != "" && !validName(r.Query.Prefix) {
		return fmt.Errorf("perfc: request name %q: %w", r.Query.Prefix, ErrInvalid)
	}
	if r.Op == OpGet && r.Query.Prefix == "" {
		return fmt.Errorf("perfc: get needs a name: %w", ErrInvalid)
	}
	return nil
}

// Handle answers a PERFC request from root, the node's set: the whole
// work of the PERFC_DUMP, PERFC_GET and PERFC_RESET handlers besides
// decoding and encoding. It returns an error wrapping ErrNotFound when the
// domain does not exist or a get matches nothing, and ErrInvalid for a
// request that does not validate.
func Handle(root *Set, r Request) (Dump, error) {
	if err := r.Validate(); err != nil {
		return Dump{}, err
	}
	set := root
	if r.Domain != "" {
		for seg := range strings.SplitSeq(r.Domain, "/") {
			var err error
			if set, err = set.LookupChild(seg); err != nil {
				return Dump{}, fmt.Errorf("perfc: domain %q: %w", r.Domain, ErrNotFound)
			}
		}
	}
	switch r.Op {
	case OpReset:
		return set.Reset(r.Query), nil
	case OpGet:
		d := set.Dump(r.Query)
		if len(d.Metrics) == 0 {
			return d, fmt.Errorf("perfc: no metric %q in domain %q: %w", r.Query.Prefix, r.Domain, ErrNotFound)
		}
		return d, nil
	default:
		return set.Dump(r.Query), nil
	}
}
