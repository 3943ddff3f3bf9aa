package perfc

import (
	"errors"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRequestBytes(t *testing.T) {
	for _, tc := range []struct {
		desc string
		req  Request
		want []byte
	}{
		{"dump everything", Request{Op: OpDump}, []byte{0xa2, 0x01, 0x01, 0x03, 0xa0}},
		{"get a name in a domain", Request{Op: OpGet, Domain: "dn5", Query: Query{Prefix: "aoe.cmd"}},
			[]byte{0xa3, 0x01, 0x02, 0x02, 0x63, 'd', 'n', '5', 0x03, 0xa1, 0x01, 0x67, 'a', 'o', 'e', '.', 'c', 'm', 'd'}},
		{"reset the node only", Request{Op: OpReset, Query: Query{Local: true}}, []byte{0xa2, 0x01, 0x03, 0x03, 0xa1, 0x02, 0xf5}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := tc.req.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("MarshalBinary (-want +got):\n%s", diff)
			}
			var back Request
			if err := back.UnmarshalBinary(tc.want); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.req, back); diff != "" {
				t.Errorf("UnmarshalBinary (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRequestRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		desc string
		in   []byte
		want error
	}{
		{"empty", nil, io.ErrUnexpectedEOF},
		{"truncated", []byte{0xa2, 0x01, 0x01, 0x03}, io.ErrUnexpectedEOF},
		{"op 0", []byte{0xa1, 0x03, 0xa0}, ErrInvalid},
		{"op 4", []byte{0xa2, 0x01, 0x04, 0x03, 0xa0}, ErrInvalid},
		{"get without a name", []byte{0xa2, 0x01, 0x02, 0x03, 0xa0}, ErrInvalid},
		{"domain with a dot", []byte{0xa3, 0x01, 0x01, 0x02, 0x62, '.', '.', 0x03, 0xa0}, ErrInvalid},
		{"name with a capital", []byte{0xa2, 0x01, 0x01, 0x03, 0xa1, 0x01, 0x61, 'A'}, ErrInvalid},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var r Request
			if err := r.UnmarshalBinary(tc.in); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func FuzzRequestUnmarshalBinary(f *testing.F) {
	f.Add([]byte{0xa2, 0x01, 0x01, 0x03, 0xa0})
	f.Add([]byte{0xa3, 0x01, 0x02, 0x02, 0x63, 'd', 'n', '5', 0x03, 0xa1, 0x01, 0x67, 'a', 'o', 'e', '.', 'c', 'm', 'd'})
	f.Add([]byte{0xa2, 0x01, 0x03, 0x03, 0xa3, 0x01, 0x61, 'a', 0x02, 0xf5, 0x03, 0xf5})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Request
		if err := r.UnmarshalBinary(b); err != nil {
			return
		}
		again, err := r.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded request does not encode: %v", err)
		}
		var r2 Request
		if err := r2.UnmarshalBinary(again); err != nil {
			t.Fatalf("re-encoded request does not decode: %v", err)
		}
		if r != r2 {
			t.Fatalf("round trip: %+v then %+v", r, r2)
		}
		s := newTestSet(t, 1)
		s.Counter("a.b", "x", "y").Inc()
		s.Child("dn5").Counter("a.b", "x", "y").Inc()
		Handle(s, r) // must not panic on any valid request
	})
}

func TestHandleAnswersDumpGetAndResetForNodeOrDomain(t *testing.T) {
	root := newTestSet(t, 1)
	root.Counter("proto.rpc.calls.ping", "calls", "Pings").Add(5)
	dn5 := root.Child("dn5")
	writes := dn5.Counter("aoe.cmd.write", "commands", "AoE writes")
	writes.Add(7)
	dn5.Child("vcpu0").Counter("aoe.cmd.write", "commands", "AoE writes").Add(1)

	names := func(d Dump) (out []string) {
		for _, m := range d.Metrics {
			out = append(out, m.Path()+"="+itoa(m.Value))
		}
		return out
	}
	for _, tc := range []struct {
		desc string
		req  Request
		want []string
		err  error
	}{
		{"dump node and domains", Request{Op: OpDump}, []string{"proto.rpc.calls.ping=5", "dn5/aoe.cmd.write=7", "dn5/vcpu0/aoe.cmd.write=1"}, nil},
		{"dump node only", Request{Op: OpDump, Query: Query{Local: true}}, []string{"proto.rpc.calls.ping=5"}, nil},
		{"get in a domain", Request{Op: OpGet, Domain: "dn5", Query: Query{Prefix: "aoe.cmd.write", Local: true}}, []string{"aoe.cmd.write=7"}, nil},
		{"get in a nested set", Request{Op: OpGet, Domain: "dn5/vcpu0", Query: Query{Prefix: "aoe"}}, []string{"aoe.cmd.write=1"}, nil},
		{"get of an unknown name", Request{Op: OpGet, Query: Query{Prefix: "proto.drops"}}, nil, ErrNotFound},
		{"unknown domain", Request{Op: OpDump, Domain: "dn9"}, nil, ErrNotFound},
		{"invalid", Request{Op: 9}, nil, ErrInvalid},
		{"reset a domain", Request{Op: OpReset, Domain: "dn5", Query: Query{Local: true}}, []string{"aoe.cmd.write=7"}, nil},
		{"after the reset", Request{Op: OpDump}, []string{"proto.rpc.calls.ping=5", "dn5/aoe.cmd.write=0", "dn5/vcpu0/aoe.cmd.write=1"}, nil},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			d, err := Handle(root, tc.req)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if diff := cmp.Diff(tc.want, names(d)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
