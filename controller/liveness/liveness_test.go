package liveness

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mvstack/mvstack/controller/leader"
	"github.com/mvstack/mvstack/controller/state"
	"github.com/mvstack/mvstack/proto"
)

type memStore struct {
	mu sync.Mutex
	s  *state.State
}

func (m *memStore) Read(fn func(*state.State)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fn(m.s)
}

func (m *memStore) Apply(_ context.Context, c state.Command) (any, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.s.ApplyCommand(c)
}

func (m *memStore) node(id string) state.Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	return *m.s.Nodes[id]
}

type prober struct {
	mu    sync.Mutex
	alive map[string]bool
	terms []uint64
}

func (p *prober) Probe(ctx context.Context, node string, term uint64) error {
	p.mu.Lock()
	ok := p.alive[node]
	p.terms = append(p.terms, term)
	p.mu.Unlock()
	if ok {
		return nil
	}
	<-ctx.Done()
	return errors.New("no answer")
}

const node = "00000001"

func setup(t *testing.T) (*Monitor, *memStore, *prober) {
	t.Helper()
	st := &memStore{s: state.New()}
	st.Apply(t.Context(), state.RegisterNode{MAC: proto.MAC{2, 0, 0, 0, 0, 1}})
	p := &prober{alive: map[string]bool{}}
	m, err := New(DefaultConfig(), st, p)
	if err != nil {
		t.Fatal(err)
	}
	return m, st, p
}

// beat sends heartbeats every 500 ms for d.
func beat(m *Monitor, d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		m.Heartbeat(Heartbeat{Node: node})
	}
}

func run(t *testing.T, m *Monitor) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestSilentNodeInErrorWithinTolerance(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, st, _ := setup(t)
		run(t, m)
		beat(m, 3*time.Second)
		stopped := time.Now()
		time.Sleep(DefaultConfig().Tolerance - 100*time.Millisecond)
		if got := st.node(node).State(); got != state.HostEnabled {
			t.Fatalf("state %s before the tolerance passed, want enabled", got)
		}
		time.Sleep(time.Until(stopped.Add(DefaultConfig().WorstCase())) + time.Millisecond)
		n := st.node(node)
		if n.State() != state.HostError {
			t.Fatalf("state %s %v after silence, want error", n.State(), DefaultConfig().WorstCase())
		}
		if n.Reason == "" {
			t.Error("error state carries no reason")
		}
		if DefaultConfig().WorstCase() > 3*time.Second {
			t.Errorf("default worst case %v exceeds the 3 s the issue allows", DefaultConfig().WorstCase())
		}
	})
}

func TestSilentNodeAnsweringProbesStaysUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, st, p := setup(t)
		p.alive[node] = true
		run(t, m)
		time.Sleep(10 * time.Second)
		if got := st.node(node).State(); got != state.HostEnabled {
			t.Fatalf("state %s of a node that answers probes, want enabled", got)
		}
		if len(p.terms) == 0 {
			t.Fatal("silent node was never probed")
		}
	})
}

func TestRecoveryThroughRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, st, _ := setup(t)
		run(t, m)
		time.Sleep(5 * time.Second)
		if got := st.node(node).State(); got != state.HostError {
			t.Fatalf("state %s, want error", got)
		}
		m.Heartbeat(Heartbeat{Node: node})
		time.Sleep(200 * time.Millisecond)
		if got := st.node(node).State(); got != state.HostRetry {
			t.Fatalf("state %s after a heartbeat in error, want retry", got)
		}
		beat(m, 1600*time.Millisecond) // 4 heartbeats
		time.Sleep(200 * time.Millisecond)
		if got := st.node(node).State(); got != state.HostEnabled {
			t.Fatalf("state %s after steady heartbeats, want enabled", got)
		}
	})
}

func TestRetryFallsBackToError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, st, _ := setup(t)
		run(t, m)
		time.Sleep(5 * time.Second)
		m.Heartbeat(Heartbeat{Node: node})
		time.Sleep(200 * time.Millisecond)
		time.Sleep(2 * time.Second)
		if got := st.node(node).State(); got != state.HostError {
			t.Fatalf("state %s after a single heartbeat then silence, want error", got)
		}
	})
}

func TestOfflineNotMonitored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, st, p := setup(t)
		st.Apply(t.Context(), state.SetAdmin{Node: node, State: state.AdminOffline})
		run(t, m)
		time.Sleep(10 * time.Second)
		if got := st.node(node).State(); got != state.HostOffline {
			t.Fatalf("state %s, want offline", got)
		}
		if len(p.terms) != 0 {
			t.Error("an offline node was probed")
		}
	})
}

func TestMonitoringWrittenAtMostPerInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, st, _ := setup(t)
		run(t, m)
		for i := range 25 { // 12.5 s of heartbeats with figures
			m.Heartbeat(Heartbeat{Node: node, Monitoring: &state.Monitoring{MaxCPU: 1600, UsedCPU: uint64(i), NetRX: uint64(i)}})
			time.Sleep(500 * time.Millisecond)
		}
		n := st.node(node)
		if n.Monitoring.MaxCPU != 1600 || n.Monitoring.At.IsZero() {
			t.Fatalf("monitoring %+v, want the reported figures", n.Monitoring)
		}
		// Written at the first heartbeat and once 10 s later: the figure
		// is from about the 21st heartbeat, not the last.
		if n.Monitoring.UsedCPU < 19 || n.Monitoring.UsedCPU > 22 {
			t.Errorf("monitoring from heartbeat %d, want about 20 (one write per 10 s)", n.Monitoring.UsedCPU)
		}
	})
}

func TestProbesCarryTerm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, _, p := setup(t)
		p.alive[node] = true
		ctx, cancel := context.WithCancel(t.Context())
		ctx = leader.WithTerm(ctx, 7)
		done := make(chan struct{})
		go func() { m.Run(ctx); close(done) }()
		time.Sleep(3 * time.Second)
		cancel()
		<-done
		if len(p.terms) == 0 || p.terms[0] != 7 {
			t.Errorf("probes carried terms %v, want 7", p.terms)
		}
	})
}
