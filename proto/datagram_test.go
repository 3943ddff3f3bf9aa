package proto_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/mvstack/mvstack/proto"
)

func TestDatagramsOpenOnceAndOnlyForTheirPurpose(t *testing.T) {
	keys := testKeyring(t, 1, 7)
	s, err := proto.NewSealer(keys, "mvstack stats v1", macA)
	if err != nil {
		t.Fatal(err)
	}
	o := proto.NewOpener(keys, "mvstack stats v1")
	payload := bytes.Repeat([]byte("cpu"), 100)
	frame := s.Seal(nil, proto.Broadcast, payload)
	got, err := o.Open(append([]byte(nil), frame...), macA, proto.Broadcast)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("Open = %d bytes, %v", len(got), err)
	}
	if _, err := o.Open(append([]byte(nil), frame...), macA, proto.Broadcast); !errors.Is(err, proto.ErrReplay) {
		t.Fatalf("replay: %v, want ErrReplay", err)
	}
	for _, tc := range []struct {
		desc     string
		frame    []byte
		src, dst proto.MAC
		opener   *proto.Opener
	}{
		{"spoofed source", s.Seal(nil, proto.Broadcast, payload), macB, proto.Broadcast, o},
		{"another destination", s.Seal(nil, proto.Broadcast, payload), macA, macB, o},
		{"another purpose", s.Seal(nil, proto.Broadcast, payload), macA, proto.Broadcast, proto.NewOpener(keys, "other v1")},
		{"another key", s.Seal(nil, proto.Broadcast, payload), macA, proto.Broadcast, proto.NewOpener(testKeyring(t, 1, 9), "mvstack stats v1")},
		{"flipped bit", flip(s.Seal(nil, proto.Broadcast, payload), 40), macA, proto.Broadcast, o},
		{"truncated", s.Seal(nil, proto.Broadcast, payload)[:50], macA, proto.Broadcast, o},
	} {
		if _, err := tc.opener.Open(tc.frame, tc.src, tc.dst); !errors.Is(err, proto.ErrAuth) {
			t.Errorf("%s: %v, want ErrAuth", tc.desc, err)
		}
	}
	short := s.Seal(nil, proto.Broadcast, []byte{1, 2})
	if len(short) < proto.MinPayload {
		t.Fatalf("a short datagram is %d bytes: Ethernet would pad it", len(short))
	}
	got, err = o.Open(short, macA, proto.Broadcast)
	if err != nil || !bytes.HasPrefix(got, []byte{1, 2}) {
		t.Fatalf("short payload: % x, %v", got, err)
	}
	if _, err := proto.NewSealer(keys, "mvstack control v1", macA); err == nil {
		t.Fatal("a datagram sealer took the control protocol's purpose")
	}
}

func flip(b []byte, i int) []byte { b[i] ^= 1; return b }
