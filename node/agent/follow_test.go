package agent_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mvstack/mvstack/node/agent"
	"github.com/mvstack/mvstack/node/nodeclient"
	"github.com/mvstack/mvstack/proto"
)

// Heartbeats go to the controller that most recently discovered or probed
// the node with a current term: a new leader's first discovery moves them,
// a deposed leader's does not, an operator's (term 0) never does.
func TestHeartbeatsFollowTheControllerThatLeads(t *testing.T) {
	thirdMAC := proto.MAC{0x02, 0, 0, 0, 0, 0xc3}
	r := newRig(t, func(c *agent.Config) {
		c.Controller = ctlMAC.String()
		c.HeartbeatInterval = agent.Duration(time.Hour) // only the first and those a change sends
	})
	got := make(chan proto.MAC, 16)
	later, third := r.endpoint(t, laterMAC), r.endpoint(t, thirdMAC)
	for _, ep := range []*proto.Endpoint{r.ep, later, third} {
		to := ep.Addr()
		nodeclient.HandleHeartbeats(ep, func(from proto.MAC, hb nodeclient.Heartbeat) { got <- to })
	}
	runCtx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.agent.Run(runCtx) }()
	defer func() { stop(); <-done }()
	next := func() proto.MAC {
		t.Helper()
		select {
		case m := <-got:
			return m
		case <-time.After(10 * time.Second):
			t.Fatal("no heartbeat within 10 s")
		}
		return proto.MAC{}
	}
	if m := next(); m != ctlMAC || r.agent.Controller() != ctlMAC {
		t.Fatalf("first heartbeat went to %s, want the configured %s", m, ctlMAC)
	}
	c := ctx(t)
	discover := func(ep *proto.Endpoint, term uint64) {
		t.Helper()
		if _, err := nodeclient.New(ep).WithTerm(term).Discover(c, 50*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}

	// A new leader (term 5) discovers: the next heartbeat goes to it at once.
	discover(later, 5)
	if m := next(); m != laterMAC || r.agent.Controller() != laterMAC {
		t.Fatalf("after term 5's discovery the heartbeat went to %s, want %s", m, laterMAC)
	}
	// The deposed leader (term 4) and an operator (term 0) change nothing;
	// the deposed leader's probe is refused.
	discover(r.ep, 4)
	discover(third, 0)
	if _, err := r.client.WithTerm(4).Probe(c, nodeMAC); !errors.Is(err, nodeclient.ErrStaleTerm) {
		t.Errorf("probe of term 4 after term 5: %v, want ErrStaleTerm", err)
	}
	if _, err := nodeclient.New(third).Probe(c, nodeMAC); err != nil {
		t.Errorf("an operator's probe: %v", err)
	}
	if ctl := r.agent.Controller(); ctl != laterMAC {
		t.Errorf("after term 4's and an operator's discovery, heartbeats go to %s; want still %s", ctl, laterMAC)
	}
	// A probe of the same term from another controller moves them too.
	if _, err := nodeclient.New(third).WithTerm(5).Probe(c, nodeMAC); err != nil {
		t.Fatal(err)
	}
	if m := next(); m != thirdMAC {
		t.Fatalf("after a probe of term 5 the heartbeat went to %s, want %s", m, thirdMAC)
	}
	select {
	case m := <-got:
		t.Errorf("an extra heartbeat went to %s", m)
	default:
	}
}
