package perfcrpc_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/google/go-cmp/cmp"

	"github.com/mvstack/mvstack/perfc"
	"github.com/mvstack/mvstack/perfc/perfcrpc"
	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/proto/linktest"
)

var (
	nodeMAC  = proto.MAC{0x0c, 0xc4, 0x7a, 0x77, 0xf9, 0xaf}
	ctlMAC   = proto.MAC{0x02, 0, 0, 0, 0, 0x01}
	rogueMAC = proto.MAC{0x02, 0, 0, 0, 0, 0x66}
)

func keyring(t *testing.T, id uint8) *proto.Keyring {
	t.Helper()
	k, err := proto.NewKey(id)
	if err != nil {
		t.Fatal(err)
	}
	r, err := proto.NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// lab is a node serving PERFC and a controller host with the same key on
// one in-memory segment. Make it inside a synctest bubble.
type lab struct {
	sw     *linktest.Switch
	keys   *proto.Keyring
	node   *proto.Endpoint
	set    *perfc.Set
	ctl    *proto.Endpoint
	client *perfcrpc.Client
}

func newLab(t *testing.T) *lab {
	t.Helper()
	l := &lab{sw: linktest.NewSwitch(linktest.Config{}), keys: keyring(t, 1)}
	t.Cleanup(l.sw.Close)
	var err error
	if l.set, err = perfc.NewSet(nil); err != nil {
		t.Fatal(err)
	}
	l.node = l.endpoint(t, nodeMAC, l.keys)
	perfcrpc.Register(l.node, l.set)
	l.node.Handle(proto.MethodPing, perfcrpc.Instrument(l.set, proto.MethodPing, perfcrpc.Ping))
	detach, err := perfcrpc.AttachStats(l.set, l.node)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(detach)
	l.ctl = l.endpoint(t, ctlMAC, l.keys)
	l.client = perfcrpc.NewClient(l.ctl)
	return l
}

func (l *lab) endpoint(t *testing.T, mac proto.MAC, keys *proto.Keyring) *proto.Endpoint {
	t.Helper()
	cfg := proto.DefaultConfig()
	cfg.Keys = keys
	ep, err := proto.NewEndpoint(l.sw.Link(mac, proto.EtherTypeControl), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
	return ep
}

func (l *lab) ping(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		if _, err := l.ctl.Call(t.Context(), nodeMAC, proto.MethodPing, []byte{byte(i)}); err != nil {
			t.Fatalf("ping %d: %v", i, err)
		}
	}
}

// value returns the metric of domain "" called name in d, failing the test
// when there is none.
func value(t *testing.T, d perfc.Dump, name string) int64 {
	t.Helper()
	m, ok := d.Find("", name)
	if !ok {
		t.Fatalf("no metric %s in the answer", name)
	}
	return m.Value
}

func TestDumpListsEveryCounterWithDescriptionAndUnit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		dom := l.set.Child("dn5")
		dom.Counter("node.domain.start", "ops", "Domain starts")
		dom.Gauge("node.domain.vcpus", "vcpus", "Virtual CPUs of the domain")
		l.ping(t, 3)

		got, err := l.client.Dump(t.Context(), nodeMAC, "")
		if err != nil {
			t.Fatal(err)
		}
		local := l.set.Dump(perfc.Query{})
		// Every metric the node holds, with its description and unit
		// (values move between the two dumps: frames, messages).
		type def struct{ Domain, Name, Unit, Desc string }
		defs := func(d perfc.Dump) []def {
			var out []def
			for _, m := range d.Metrics {
				out = append(out, def{m.Domain, m.Name, m.Unit, m.Desc})
			}
			return out
		}
		if diff := cmp.Diff(defs(local), defs(got)); diff != "" {
			t.Errorf("dump over the wire differs from the node's set (-want +got):\n%s", diff)
		}
		for _, m := range got.Metrics {
			if m.Desc == "" || m.Unit == "" {
				t.Errorf("%s has no description or unit: %+v", m.Path(), m)
			}
		}
		for _, name := range []string{"perfc.requests.dump", "proto.drops.auth", "proto.frames_in.control", "proto.messages_in", "proto.rpc.served.ping", "proto.retransmits"} {
			if _, ok := got.Find("", name); !ok {
				t.Errorf("dump lacks %s", name)
			}
		}
		if _, ok := got.Find("dn5", "node.domain.start"); !ok {
			t.Error("dump of the node lacks its domain dn5")
		}
		if n := value(t, got, "perfc.requests.dump"); n != 1 {
			t.Errorf("perfc.requests.dump = %d in its own answer, want 1 (counted before answering)", n)
		}
	})
}

func TestGetAfterExactlyNCallsReturnsN(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		const n = 17
		l.ping(t, n)
		got, err := l.client.Get(t.Context(), nodeMAC, "", "proto.rpc.served.ping")
		if err != nil {
			t.Fatal(err)
		}
		if v := value(t, got, "proto.rpc.served.ping"); v != n {
			t.Errorf("proto.rpc.served.ping = %d after %d pings", v, n)
		}
		// A get returns the name and what lies below it, nothing else.
		var names []string
		for _, m := range got.Metrics {
			names = append(names, m.Name)
		}
		want := []string{"proto.rpc.served.ping", "proto.rpc.served.ping.errors", "proto.rpc.served.ping.latency"}
		if diff := cmp.Diff(want, names); diff != "" {
			t.Errorf("get proto.rpc.served.ping (-want +got):\n%s", diff)
		}
		// The endpoint's own message counter holds the pings and this get,
		// which it counted when it arrived, before the handler read it.
		got, err = l.client.Get(t.Context(), nodeMAC, "", "proto.messages_in")
		if err != nil {
			t.Fatal(err)
		}
		if v := value(t, got, "proto.messages_in"); v != n+2 {
			t.Errorf("proto.messages_in = %d, want %d pings + the first get + this one", v, n)
		}
	})
}

func TestResetZeroesAndReturnsWhatItHeld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		const n = 5
		l.ping(t, n)
		old, err := l.client.Reset(t.Context(), nodeMAC, "", "")
		if err != nil {
			t.Fatal(err)
		}
		if v := value(t, old, "proto.rpc.served.ping"); v != n {
			t.Errorf("reset returned proto.rpc.served.ping = %d, want %d", v, n)
		}
		if v := value(t, old, "proto.messages_in"); v != n+1 {
			t.Errorf("reset returned proto.messages_in = %d, want %d pings + the reset", v, n)
		}
		if v := value(t, old, "perfc.requests.reset"); v != 1 {
			t.Errorf("reset returned perfc.requests.reset = %d, want itself", v)
		}
		now, err := l.client.Dump(t.Context(), nodeMAC, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range now.Metrics {
			want := int64(0)
			switch m.Name {
			case "perfc.requests.dump", "proto.messages_in":
				want = 1 // this dump itself
			case "proto.frames_in.control", "proto.frames_out.control", "proto.messages_out":
				continue // the dump's own frames, and acks of the reset's answer
			}
			if m.Value != want {
				t.Errorf("%s = %d after the reset, want %d", m.Name, m.Value, want)
			}
		}
		// The protocol's own totals are not touched by a reset.
		if st := l.node.Stats(); st.MessagesIn != n+2 {
			t.Errorf("endpoint Stats().MessagesIn = %d, want %d: a perfc reset must not change it", st.MessagesIn, n+2)
		}
	})
}

func TestDomainSet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		starts := l.set.Child("dn5").Counter("node.domain.start", "ops", "Domain starts")
		l.set.Child("dn6").Counter("node.domain.start", "ops", "Domain starts").Add(9)
		starts.Add(3)

		got, err := l.client.Dump(t.Context(), nodeMAC, "dn5")
		if err != nil {
			t.Fatal(err)
		}
		want := perfc.Dump{Metrics: []perfc.Metric{{Name: "node.domain.start", Unit: "ops", Desc: "Domain starts", Value: 3}}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("dump -d dn5 (-want +got):\n%s", diff)
		}
		old, err := l.client.Reset(t.Context(), nodeMAC, "dn5", "")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, old); diff != "" {
			t.Errorf("reset -d dn5 returned (-want +got):\n%s", diff)
		}
		if v := starts.Value(); v != 0 {
			t.Errorf("dn5 node.domain.start = %d after its reset", v)
		}
		g, err := l.client.Get(t.Context(), nodeMAC, "dn6", "node.domain.start")
		if err != nil {
			t.Fatal(err)
		}
		if v := value(t, g, "node.domain.start"); v != 9 {
			t.Errorf("dn6 node.domain.start = %d: a reset of dn5 touched dn6", v)
		}
	})
}

func TestUnknownNameOrDomainIsNotFound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		for _, tc := range []struct {
			desc string
			req  perfc.Request
		}{
			{"get of an unknown name", perfc.Request{Op: perfc.OpGet, Query: perfc.Query{Prefix: "proto.no_such"}}},
			{"dump of an unknown domain", perfc.Request{Op: perfc.OpDump, Domain: "dn42"}},
			{"reset of an unknown domain", perfc.Request{Op: perfc.OpReset, Domain: "dn42"}},
		} {
			_, err := l.client.Do(t.Context(), nodeMAC, tc.req)
			var pe *perfcrpc.Error
			if !errors.Is(err, perfc.ErrNotFound) || !errors.As(err, &pe) {
				t.Errorf("%s: got %v, want a *perfcrpc.Error wrapping perfc.ErrNotFound", tc.desc, err)
				continue
			}
			if pe.Node != nodeMAC {
				t.Errorf("%s: error names node %s, want %s", tc.desc, pe.Node, nodeMAC)
			}
		}
	})
}

func TestOpMustMatchMethod(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		b, err := perfc.Request{Op: perfc.OpReset}.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		_, err = l.ctl.Call(t.Context(), nodeMAC, perfcrpc.MethodDump, b)
		var re *proto.RemoteError
		if !errors.As(err, &re) || re.Code != proto.CodeBadRequest {
			t.Fatalf("a reset sent as %s: got %v, want a bad-request error", perfcrpc.MethodDump, err)
		}
		if _, err = l.ctl.Call(t.Context(), nodeMAC, perfcrpc.MethodGet, []byte{0xff}); !errors.As(err, &re) || re.Code != proto.CodeBadRequest {
			t.Fatalf("garbage payload: got %v, want a bad-request error", err)
		}
		if v, _ := l.set.Get("perfc.requests.reset"); v.Value != 0 {
			t.Errorf("perfc.requests.reset = %d: a refused request was served", v.Value)
		}
	})
}

func TestHostWithoutTheKeyCanNeitherDumpNorReset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t)
		l.ping(t, 4)
		rogue := perfcrpc.NewClient(l.endpoint(t, rogueMAC, keyring(t, 1))) // same key id, other bytes
		before := l.node.Stats().Dropped(proto.DropAuth)

		for _, op := range []perfc.Op{perfc.OpDump, perfc.OpReset} {
			_, err := rogue.Do(context.Background(), nodeMAC, perfc.Request{Op: op})
			if !errors.Is(err, proto.ErrUnauthenticated) {
				t.Errorf("%s without the key: got %v, want proto.ErrUnauthenticated", op, err)
			}
		}
		if after := l.node.Stats().Dropped(proto.DropAuth); after <= before {
			t.Errorf("node counted %d auth drops before and %d after the rogue's requests", before, after)
		}
		// The handlers never ran and nothing was reset.
		d, err := l.client.Dump(t.Context(), nodeMAC, "")
		if err != nil {
			t.Fatal(err)
		}
		for name, want := range map[string]int64{
			"perfc.requests.dump":   1, // ours, just now
			"perfc.requests.reset":  0,
			"proto.rpc.served.ping": 4,
		} {
			if v := value(t, d, name); v != want {
				t.Errorf("%s = %d, want %d", name, v, want)
			}
		}
		if v := value(t, d, "proto.drops.auth"); v == 0 {
			t.Error("proto.drops.auth is 0 in the dump after refused frames")
		}
		if v := value(t, d, "proto.auth.refused_sent"); v == 0 {
			t.Error("proto.auth.refused_sent is 0: the rogue was never told it was refused")
		}
	})
}

func TestMethodSegment(t *testing.T) {
	for _, tc := range []struct{ method, want string }{
		{"ping", "ping"},
		{"node.identify", "node_identify"},
		{"perfc.dump", "perfc_dump"},
		{"Domain-Op", "domain_op"},
		{"9lives", "m9lives"},
	} {
		if got := perfcrpc.MethodSegment(tc.method); got != tc.want {
			t.Errorf("MethodSegment(%q) = %q, want %q", tc.method, got, tc.want)
		}
	}
}
