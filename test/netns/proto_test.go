package netns_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/test/netns"
)

func clusterKeys(t *testing.T) *proto.Keyring {
	t.Helper()
	k, err := proto.NewKey(1)
	if err != nil {
		t.Fatal(err)
	}
	r, err := proto.NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// endpointOn opens the control protocol on a real AF_PACKET socket inside
// the host's namespace.
func endpointOn(t *testing.T, h *netns.Host, keys *proto.Keyring) *proto.Endpoint {
	t.Helper()
	var link *proto.PacketLink
	if err := h.Do(func() (err error) {
		link, err = proto.OpenPacketLink(h.Iface, proto.EtherTypeControl, nil)
		return err
	}); err != nil {
		t.Fatalf("%s: %v", h, err)
	}
	cfg := proto.DefaultConfig()
	cfg.Keys = keys
	e, err := proto.NewEndpoint(link, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// echoCalls makes n calls of mixed sizes from a to b, 16 at a time, and
// checks that every response is right and every request ran once.
func echoCalls(t *testing.T, a, b *proto.Endpoint, n int, maxSize int, seed uint64) {
	t.Helper()
	ran := make([]atomic.Int32, n)
	b.Handle("echo", func(ctx context.Context, r *proto.Request) ([]byte, error) {
		ran[binary.BigEndian.Uint32(r.Payload)].Add(1)
		return r.Payload, nil
	})
	rng := rand.New(rand.NewPCG(seed, 1))
	sizes := make([]int, n)
	for i := range sizes {
		if rng.IntN(100) == 0 {
			sizes[i] = 4 + rng.IntN(maxSize)
		} else {
			sizes[i] = 64 + rng.IntN(64<<10)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	work := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				p := make([]byte, sizes[i])
				for j := range p {
					p[j] = byte(i + j)
				}
				binary.BigEndian.PutUint32(p, uint32(i))
				got, err := a.Call(ctx, b.Addr(), "echo", p)
				if err != nil {
					t.Errorf("call %d (%d bytes): %v", i, len(p), err)
					continue
				}
				if !bytes.Equal(got, p) {
					t.Errorf("call %d: wrong response", i)
				}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	for i := range ran {
		if got := ran[i].Load(); got != 1 {
			t.Errorf("request %d ran %d times, want once", i, got)
		}
	}
}

func TestControlProtocolOverVethAtMTU1500And9000(t *testing.T) {
	netns.RequireRoot(t)
	for _, mtu := range []int{1500, 9000} {
		t.Run(fmt.Sprintf("mtu%d", mtu), func(t *testing.T) {
			lab := netns.New(t, netns.Config{Hosts: 2, MTU: mtu})
			keys := clusterKeys(t)
			a := endpointOn(t, lab.Hosts[0], keys)
			b := endpointOn(t, lab.Hosts[1], keys)
			if a.MTU() != mtu {
				t.Fatalf("link MTU %d, want the interface's %d", a.MTU(), mtu)
			}
			echoCalls(t, a, b, 300, 4<<20, uint64(mtu))
		})
	}
}

func TestFiveNodesTalkAndDiscoverEachOther(t *testing.T) {
	netns.RequireRoot(t)
	lab := netns.New(t, netns.Config{Hosts: 5, MTU: 1500})
	keys := clusterKeys(t)
	eps := make([]*proto.Endpoint, len(lab.Hosts))
	for i, h := range lab.Hosts {
		eps[i] = endpointOn(t, h, keys)
		eps[i].Handle("whoami", func(ctx context.Context, r *proto.Request) ([]byte, error) {
			return []byte(r.From.String()), nil
		})
	}
	for i, a := range eps {
		for j, b := range eps {
			if i == j {
				continue
			}
			got, err := a.Call(t.Context(), b.Addr(), "whoami", nil)
			if err != nil || string(got) != a.Addr().String() {
				t.Errorf("%s → %s: %q, %v", lab.Hosts[i], lab.Hosts[j], got, err)
			}
		}
	}
	replies, err := eps[0].Discover(t.Context(), "whoami", nil, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(replies) != 4 {
		t.Fatalf("discovery found %d nodes, want the 4 others", len(replies))
	}
}

func TestEverythingArrivesOnceWithFivePercentLossOnTheBridge(t *testing.T) {
	netns.RequireRoot(t)
	netns.RequireNft(t)
	lab := netns.New(t, netns.Config{Hosts: 2, MTU: 9000})
	keys := clusterKeys(t)
	a := endpointOn(t, lab.Hosts[0], keys)
	b := endpointOn(t, lab.Hosts[1], keys)
	if err := lab.SetLoss(5); err != nil {
		t.Fatal(err)
	}
	echoCalls(t, a, b, 500, 1<<20, 5)
	if st := a.Stats(); st.Retransmits == 0 {
		t.Error("no retransmission: the bridge lost nothing?")
	}
}

func TestMvctlPingAgainstAResponder(t *testing.T) {
	netns.RequireRoot(t)
	lab := netns.New(t, netns.Config{Hosts: 3, MTU: 1500})
	bin := netns.BuildBinaries(t, "./cmd/mvctl")
	a, b, c := lab.Hosts[0], lab.Hosts[1], lab.Hosts[2]
	dir := t.TempDir()
	key := filepath.Join(dir, "cluster.key")
	if out, err := a.Run(t.Context(), bin["mvctl"], "keygen", "--out", key); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	b.Start(t, bin["mvctl"], "responder", "--iface", b.Iface, "--key", key)

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// The responder needs a moment to open its socket: retry a bounded time.
	var out string
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		out, err = a.Run(ctx, bin["mvctl"], "ping", "--iface", a.Iface, "--key", key, "--mvmac", b.MAC.String(), "--count", "5", "--interval", "10ms")
		if err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("mvctl ping: %v\n%s", err, out)
	}
	if !strings.Contains(out, "5 sent, 5 received") || !strings.Contains(out, "rtt min/avg/p50/p99/max") {
		t.Fatalf("ping output lacks the summary:\n%s", out)
	}

	// No node at that MAC: the error says so, within the tolerance.
	start := time.Now()
	out, err = a.Run(ctx, bin["mvctl"], "ping", "--iface", a.Iface, "--key", key, "--mvmac", "02:de:ad:be:ef:00", "--count", "1")
	if err == nil || !strings.Contains(out, "no node answered at MAC 02:de:ad:be:ef:00 on "+a.Iface) {
		t.Fatalf("ping of nobody: %v\n%s", err, out)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("ping of nobody took %v", took)
	}

	// A host with another key is told it was refused.
	other := filepath.Join(dir, "other.key")
	if out, err := c.Run(t.Context(), bin["mvctl"], "keygen", "--out", other); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	out, err = c.Run(ctx, bin["mvctl"], "ping", "--iface", c.Iface, "--key", other, "--mvmac", b.MAC.String(), "--count", "1")
	if err == nil || !strings.Contains(out, "refused our frames") {
		t.Fatalf("ping with the wrong key: %v\n%s", err, out)
	}

	// A world-readable key is refused before anything is sent.
	os.Chmod(other, 0o644)
	out, err = c.Run(ctx, bin["mvctl"], "ping", "--iface", c.Iface, "--key", other, "--mvmac", b.MAC.String())
	if err == nil || !strings.Contains(out, "chmod 600") {
		t.Fatalf("world-readable key: %v\n%s", err, out)
	}
}
