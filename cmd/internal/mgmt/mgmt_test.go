package mgmt

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mvstack/mvstack/proto"
)

func TestExplainNamesNodeAndInterfaceAndKeepsTheCause(t *testing.T) {
	mac := proto.MAC{2, 0, 0, 0, 0, 9}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&proto.OpError{Op: "call", Peer: mac, Err: proto.ErrPeerDead}, "no node answered at MAC 02:00:00:00:00:09 on eth3 within 1.5s"},
		{&proto.OpError{Op: "call", Peer: mac, Err: proto.ErrUnauthenticated}, "refused our frames: it has another cluster key"},
	} {
		got := Explain(tc.err, mac, "eth3", 1500*time.Millisecond)
		if !strings.Contains(got.Error(), tc.want) || !errors.Is(got, errors.Unwrap(tc.err)) {
			t.Errorf("Explain(%v) = %v, want %q and the cause kept", tc.err, got, tc.want)
		}
	}
	if Explain(nil, mac, "eth3", time.Second) != nil {
		t.Error("Explain(nil) is not nil")
	}
}

func TestOpenRefusesAReadableKeyBeforeTouchingTheNetwork(t *testing.T) {
	k, _ := proto.NewKey(1)
	path := filepath.Join(t.TempDir(), "cluster.key")
	proto.WriteKeyFile(path, k)
	os.Chmod(path, 0o644)
	_, _, err := Open(Options{Iface: "nonexistent0", KeyFile: path})
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("Open with a world-readable key: %v", err)
	}
	os.Chmod(path, 0o600)
	_, _, err = Open(Options{Iface: "nonexistent0", KeyFile: path})
	if err == nil || !strings.Contains(err.Error(), "nonexistent0") {
		t.Fatalf("Open on a missing interface: %v, want the interface named", err)
	}
}
