package nodeclient_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/mvstack/mvstack/node/domain"
	"github.com/mvstack/mvstack/node/nodeclient"
	"github.com/mvstack/mvstack/proto"
)

func TestErrorOfKeepsTheSentinelAcrossTheWire(t *testing.T) {
	for _, tc := range []struct {
		desc string
		err  error
		code nodeclient.Code
		is   error
	}{
		{"topology", fmt.Errorf("%w: dn1: vcpus 3 ≠ …", domain.ErrTopology), nodeclient.CodeTopology, domain.ErrTopology},
		{"exists", fmt.Errorf("%w: dn1", domain.ErrExists), nodeclient.CodeExists, domain.ErrExists},
		{"memory", &domain.ResourceError{Domain: "dn1", Resource: "memory", NUMANode: -1, Want: 1 << 30}, nodeclient.CodeNoMemory, domain.ErrNoMemory},
		{"cpus", &domain.ResourceError{Domain: "dn1", Resource: "vcpus", NUMANode: -1}, nodeclient.CodeNoCPU, domain.ErrNoCPU},
		{"state", fmt.Errorf("%w: cannot pause", domain.ErrState), nodeclient.CodeState, domain.ErrState},
		{"term", &nodeclient.StaleTermError{Got: 3, Highest: 4}, nodeclient.CodeStaleTerm, nodeclient.ErrStaleTerm},
		{"other", errors.New("disk on fire"), nodeclient.CodeInternal, nil},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			e := nodeclient.ErrorOf(tc.err)
			b, err := cbor.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			var got nodeclient.Error
			if err := cbor.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if got.Code != tc.code || got.Message != tc.err.Error() {
				t.Errorf("got code %d %q, want %d %q", got.Code, got.Message, tc.code, tc.err.Error())
			}
			if tc.is != nil && !errors.Is(&got, tc.is) {
				t.Errorf("errors.Is(%v, %v) is false", &got, tc.is)
			}
		})
	}
	if nodeclient.ErrorOf(&nodeclient.StaleTermError{Got: 3, Highest: 4}).Term != 4 {
		t.Error("a stale-term error does not carry the node's term")
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"512M", 512 << 20, true}, {"8G", 8 << 30, true}, {"1.5G", 3 << 29, true}, {"4096", 4096, true},
		{"2GiB", 2 << 30, true}, {"1t", 1 << 40, true}, {"", 0, false}, {"G", 0, false}, {"-1M", 0, false}, {"ten", 0, false},
	} {
		got, err := nodeclient.ParseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestMethodNamesFitTheProtocol(t *testing.T) {
	seen := map[string]bool{}
	for _, m := range nodeclient.Methods() {
		if len(m) > 32 || seen[m] {
			t.Errorf("method %q is too long or listed twice", m)
		}
		seen[m] = true
	}
}

func sampleHeartbeat() nodeclient.Heartbeat {
	return nodeclient.Heartbeat{NodeID: "7a77f9af", Seq: 3, Epoch: 99, At: time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC),
		Term: 5, MaxCPU: 6400, AllocCPU: 200, MaxMemory: 1 << 38, AllocMemory: 1 << 30, FreeMemory: 1<<38 - 1<<30,
		Domains: 2, Running: 1, Zombies: []string{"dn9"}, Wild: []string{"4242:stray"}, Crashed: true,
		Events: []domain.Event{{ID: 9, State: domain.StateCrashed, Reason: "qemu exited: signal: killed", At: time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)}}}
}

func TestHeartbeatRoundTrips(t *testing.T) {
	hb := sampleHeartbeat()
	b, err := cbor.Marshal(hb)
	if err != nil {
		t.Fatal(err)
	}
	var got nodeclient.Heartbeat
	if err := cbor.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(hb, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// FuzzHeartbeat decodes arbitrary bytes as the heartbeat a controller
// receives: no panic, and whatever decodes re-encodes to the same value.
func FuzzHeartbeat(f *testing.F) {
	b, _ := cbor.Marshal(sampleHeartbeat())
	f.Add(b)
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var hb nodeclient.Heartbeat
		if err := cbor.Unmarshal(data, &hb); err != nil {
			return
		}
		again, err := proto.MarshalCBOR(hb) // as the node sends it
		if err != nil {
			t.Fatal(err)
		}
		var hb2 nodeclient.Heartbeat
		if err := cbor.Unmarshal(again, &hb2); err != nil {
			t.Fatalf("re-encoded heartbeat does not decode: %v", err)
		}
		// An empty list and no list mean the same: CBOR's [] may come
		// back as nil.
		if !cmp.Equal(hb, hb2, cmpopts.EquateEmpty()) {
			t.Errorf("round trip changed the heartbeat:\n%s", cmp.Diff(hb, hb2, cmpopts.EquateEmpty()))
		}
	})
}

// FuzzCreateRequest decodes arbitrary bytes as the create request a node
// receives, then checks the spec the way the node does: no panic.
func FuzzCreateRequest(f *testing.F) {
	s := domain.Spec{ID: 5, VCPUs: 4, Memory: 1 << 30, Topology: domain.Topology{Sockets: 2, Cores: 2, Threads: 1},
		VNodes: domain.SplitVNodes(4, 1<<30, 2, []int{0, 1}), Disks: []domain.Disk{{NBD: "/run/mv/dn5.sock"}}, Pin: []int{0, 1, 2, 3}}
	b, _ := cbor.Marshal(nodeclient.CreateRequest{Term: 3, Spec: s, Start: true})
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var req nodeclient.CreateRequest
		if err := cbor.Unmarshal(data, &req); err != nil {
			return
		}
		spec := req.Spec.WithDefaults()
		if spec.Validate() == nil {
			domain.Layout(spec)
		}
		again, err := cbor.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		var req2 nodeclient.CreateRequest
		if err := cbor.Unmarshal(again, &req2); err != nil {
			t.Fatalf("re-encoded request does not decode: %v", err)
		}
	})
}
