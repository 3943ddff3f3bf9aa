package rest_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	apispec "github.com/mvstack/mvstack/api"
	"github.com/mvstack/mvstack/controller/replica"
	"github.com/mvstack/mvstack/controller/replicatest"
	"github.com/mvstack/mvstack/controller/rest"
	"github.com/mvstack/mvstack/controller/state"
	"github.com/prometheus/client_golang/prometheus"
)

// env is a 3-replica cluster, each replica serving the API over httptest.
type env struct {
	t       *testing.T
	c       *replicatest.Cluster
	srv     []*httptest.Server
	token   string
	router  routers.Router
	checked int
}

func newEnv(t *testing.T) *env { t.Helper(); return newEnvWith(t, nil) }

// newEnvWith is newEnv with vols as every replica's Config.Volumes.
func newEnvWith(t *testing.T, vols rest.Volumes) *env {
	t.Helper()
	e := &env{t: t}
	var addrs []string
	for range 3 {
		s := httptest.NewUnstartedServer(nil)
		e.srv = append(e.srv, s)
		addrs = append(addrs, s.Listener.Addr().String())
	}
	e.c = replicatest.New(t, addrs)
	for i, s := range e.srv {
		h, err := rest.New(rest.Config{Store: e.c.Replicas[i], Members: e.c.Replicas[i], Metrics: prometheus.NewRegistry(), Volumes: vols})
		if err != nil {
			t.Fatal(err)
		}
		s.Config.Handler = h
		s.Start()
		t.Cleanup(s.Close)
	}
	tok, id, hash := rest.NewToken()
	// A fresh cluster on a loaded machine may still change leaders: retry
	// on the new leader until the token is committed.
	var applyErr error
	replicatest.WaitFor(t, "the token committed", func() bool {
		_, applyErr = e.c.Replicas[e.c.Leader(t)].Apply(t.Context(), state.CreateToken{At: time.Now().UTC(), ID: id, Name: "test", Hash: hash})
		return applyErr == nil || !errors.Is(applyErr, replica.ErrNoQuorum) && !errors.Is(applyErr, replica.ErrNotLeader)
	})
	if errors.Is(applyErr, state.ErrInvalid) {
		applyErr = nil // "token exists": an attempt that reported lost leadership had committed
	}
	if applyErr != nil {
		t.Fatal(applyErr)
	}
	e.token = tok
	for i := range e.srv {
		replicatest.WaitFor(t, "the token on every replica", func() bool {
			var ok bool
			e.c.Replicas[i].Read(func(s *state.State) { _, ok = s.Tokens[id] })
			return ok
		})
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(apispec.OpenAPI())
	if err != nil {
		t.Fatalf("api/openapi.yaml: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("api/openapi.yaml is not valid OpenAPI 3: %v", err)
	}
	doc.Servers = nil // the spec's server is relative; match these test servers
	for _, s := range e.srv {
		doc.Servers = append(doc.Servers, &openapi3.Server{URL: s.URL})
	}
	e.router, err = legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("answer %s is not JSON: %v", r.body, err)
	}
}

// errField returns the error answer's field.
func (r resp) errField(t *testing.T) string {
	var e struct {
		Error struct{ Code, Message, Field string }
	}
	r.json(t, &e)
	if e.Error.Message == "" {
		t.Fatalf("error answer %s has no message", r.body)
	}
	return e.Error.Field
}

// do sends a request to replica i and validates the request (which must
// be valid unless wantInvalid) and always the response against the spec.
func (e *env) do(i int, method, path, body string, opts ...opt) resp {
	t := e.t
	t.Helper()
	o := options{token: e.token}
	for _, f := range opts {
		f(&o)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, e.srv[i].URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if o.token != "" {
		req.Header.Set("Authorization", "Bearer "+o.token)
	}
	route, params, err := e.router.FindRoute(req)
	if err != nil {
		t.Fatalf("%s %s is not in api/openapi.yaml: %v", method, path, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true}}
	verr := openapi3filter.ValidateRequest(t.Context(), in)
	switch {
	case verr != nil && !o.invalid:
		t.Errorf("request %s %s %s does not match the spec: %v", method, path, body, verr)
	case verr == nil && o.invalid:
		t.Errorf("request %s %s %s was meant to be invalid but matches the spec", method, path, body)
	}
	req.Body = io.NopCloser(strings.NewReader(body))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	rin := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: res.StatusCode, Header: res.Header,
		Body: io.NopCloser(bytes.NewReader(b)), Options: in.Options}
	if err := openapi3filter.ValidateResponse(t.Context(), rin); err != nil {
		t.Errorf("answer %d to %s %s does not match the spec: %v\nbody: %s", res.StatusCode, method, path, err, b)
	}
	e.checked++
	return resp{res.StatusCode, res.Header, b}
}

type options struct {
	token   string
	invalid bool
}

type opt func(*options)

func token(s string) opt { return func(o *options) { o.token = s } }
func invalidReq() opt    { return func(o *options) { o.invalid = true } }

func registration(macTail int) string {
	return `{"mac":"02:00:00:00:00:` + strings.Repeat("0", 2-len(itoa(macTail))) + itoa(macTail) + `","inventory":{"hostname":"mv` + itoa(macTail) +
		`","hypervisor":"sim","cpu":{"vendor":"GenuineIntel","model":"Xeon","mhz":2400,"features":["vmx"]},` +
		`"numa":[{"id":0,"cores":[0,1],"memory_mb":4096,"distances":[10,21]},{"id":1,"cores":[2,3],"memory_mb":4096,"distances":[21,10]}],` +
		`"memory_mb":8192,"location":{"rack":"r1","chassis":"c1","blade":"b` + itoa(macTail) + `"}}}`
}

func itoa(i int) string {
	return strings.TrimLeft(string([]byte{byte('0' + i/10), byte('0' + i%10)}), "0")
}

func TestAuth(t *testing.T) {
	e := newEnv(t)
	if r := e.do(0, "GET", "/api/openapi.yaml", "", token("")); r.status != 200 || !bytes.Contains(r.body, []byte("openapi: 3")) {
		t.Errorf("GET /api/openapi.yaml without a token: %d", r.status)
	}
	for _, tc := range []struct{ desc, tok string }{
		{"no token", ""},
		{"not a token", "hello"},
		{"unknown id", "mvs_00000000_deadbeef"},
		{"wrong secret", e.token[:len(e.token)-2] + "00"},
	} {
		r := e.do(1, "GET", "/api/nodes", "", token(tc.tok))
		if r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: status %d, want 401 with WWW-Authenticate", tc.desc, r.status)
		}
		if f := r.errField(t); f != "Authorization" {
			t.Errorf("%s: error field %q, want Authorization", tc.desc, f)
		}
	}
	if r := e.do(1, "GET", "/api/nodes", ""); r.status != 200 {
		t.Errorf("with the token: %d %s", r.status, r.body)
	}
	// Tokens created over the API work, are listed without secrets, and
	// stop working once revoked.
	r := e.do(2, "POST", "/api/tokens", `{"name":"ops"}`)
	if r.status != 201 {
		t.Fatalf("create token: %d %s", r.status, r.body)
	}
	var created struct{ ID, Token string }
	r.json(t, &created)
	l := e.c.Leader(t)
	if r := e.do(l, "GET", "/api/tokens", "", token(created.Token)); r.status != 200 || bytes.Contains(r.body, []byte(created.Token[len(created.Token)-10:])) {
		t.Errorf("list tokens with the new token: %d %s (must not show secrets)", r.status, r.body)
	}
	if r := e.do(l, "DELETE", "/api/tokens/"+created.ID, ""); r.status != 204 {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	if r := e.do(l, "GET", "/api/nodes", "", token(created.Token)); r.status != 401 {
		t.Errorf("revoked token: %d, want 401", r.status)
	}
}

func invalidIf(b bool) opt { return func(o *options) { o.invalid = o.invalid || b } }

func TestNodesStatesCoresEventsPagination(t *testing.T) {
	e := newEnv(t)
	l := e.c.Leader(t)
	f := (l + 1) % 3
	for i := 1; i <= 5; i++ {
		if r := e.do(f, "POST", "/api/nodes", registration(i)); r.status != 201 { // forwarded by a follower
			t.Fatalf("register %d through a follower: %d %s", i, r.status, r.body)
		}
	}
	// Reads are local: wait until the follower applied everything.
	replicatest.WaitFor(t, "5 nodes on the follower", func() bool {
		var n int
		e.c.Replicas[f].Read(func(s *state.State) { n = len(s.Nodes) })
		return n == 5
	})
	var ids []string
	path := "/api/nodes?limit=2"
	for pages := 0; ; pages++ {
		var p struct {
			Items []struct{ ID, State string }
			Next  string
		}
		e.do(f, "GET", path, "").json(t, &p)
		for _, n := range p.Items {
			ids = append(ids, n.ID)
			if n.State != "enabled" {
				t.Errorf("new node %s is %s, want enabled", n.ID, n.State)
			}
		}
		if p.Next == "" {
			if pages != 2 {
				t.Errorf("5 nodes by 2 took %d pages, want 3", pages+1)
			}
			break
		}
		path = "/api/nodes?limit=2&after=" + p.Next
	}
	if strings.Join(ids, ",") != "00000001,00000002,00000003,00000004,00000005" {
		t.Errorf("paged ids %v", ids)
	}
	var n struct {
		ID        string
		Inventory struct{ NUMA []struct{ Cores []int } }
	}
	e.do(f, "GET", "/api/nodes/00000003", "").json(t, &n)
	if n.ID != "00000003" || len(n.Inventory.NUMA) != 2 {
		t.Errorf("node 3: %+v", n)
	}
	if r := e.do(f, "GET", "/api/nodes/0000beef", ""); r.status != 404 {
		t.Errorf("unknown node: %d", r.status)
	}

	// Host states.
	r := e.do(f, "PUT", "/api/nodes/00000003/state", `{"state":"disabled"}`)
	var st struct {
		State       string
		Schedulable bool
	}
	r.json(t, &st)
	if r.status != 200 || st.State != "disabled" || st.Schedulable {
		t.Errorf("disable: %d %s", r.status, r.body)
	}
	for _, tc := range []struct{ body, why string }{
		{`{"state":"error"}`, "error is set by monitoring"},
		{`{"state":"retry"}`, "retry is set by monitoring"},
		{`{"state":"sleeping"}`, "no such state"},
	} {
		r := e.do(l, "PUT", "/api/nodes/00000003/state", tc.body, invalidReq())
		if r.status != 422 || r.errField(t) != "state" {
			t.Errorf("%s (%s): %d %s, want 422 naming state", tc.body, tc.why, r.status, r.body)
		}
	}
	e.do(l, "PUT", "/api/nodes/00000004/state", `{"state":"offline"}`)
	if r := e.do(l, "PUT", "/api/nodes/00000004/state", `{"state":"flush"}`); r.status != 422 || r.errField(t) != "state" {
		t.Errorf("offline to flush: %d %s, want 422", r.status, r.body)
	}
	var ns struct{ Items []struct{ ID string } }
	e.do(l, "GET", "/api/nodes?state=offline", "").json(t, &ns)
	if len(ns.Items) != 1 || ns.Items[0].ID != "00000004" {
		t.Errorf("offline nodes: %+v", ns.Items)
	}
	var s struct{ State, AdminState string }
	e.do(l, "GET", "/api/nodes/00000004/state", "").json(t, &s)
	if s.State != "offline" {
		t.Errorf("state of node 4: %+v", s)
	}

	// Cores: 4 per node, "<node>_<index>".
	var cs struct {
		Items []struct {
			ID   string
			NUMA int
		}
		Next string
	}
	e.do(l, "GET", "/api/cores?node=00000002", "").json(t, &cs)
	if len(cs.Items) != 4 || cs.Items[2].ID != "00000002_2" || cs.Items[2].NUMA != 1 {
		t.Errorf("cores of node 2: %+v", cs.Items)
	}
	e.do(l, "GET", "/api/cores?limit=7", "").json(t, &cs)
	if len(cs.Items) != 7 || cs.Next == "" {
		t.Errorf("first page of 20 cores: %d items, next %q", len(cs.Items), cs.Next)
	}

	// Events: the log pages by sequence number.
	var ev struct {
		Items []struct {
			Seq        int
			Kind, Node string
		}
		Next string
	}
	e.do(l, "GET", "/api/events?node=00000003", "").json(t, &ev)
	if len(ev.Items) != 2 || ev.Items[1].Kind != "state" {
		t.Errorf("events of node 3: %+v", ev.Items)
	}
	e.do(l, "GET", "/api/events?limit=3", "").json(t, &ev)
	first := ev.Items[2].Seq
	e.do(l, "GET", "/api/events?limit=3&after="+ev.Next, "").json(t, &ev)
	if ev.Items[0].Seq != first+1 {
		t.Errorf("second page starts at %d, want %d", ev.Items[0].Seq, first+1)
	}

	if r := e.do(f, "DELETE", "/api/nodes/00000005", ""); r.status != 204 {
		t.Errorf("delete: %d %s", r.status, r.body)
	}
	if r := e.do(l, "GET", "/api/nodes/00000005", ""); r.status != 404 {
		t.Errorf("deleted node: %d", r.status)
	}
	if r := e.do(l, "DELETE", "/api/nodes/00000005", ""); r.status != 404 {
		t.Errorf("delete twice: %d", r.status)
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	l := e.c.Leader(t)
	e.do(l, "POST", "/api/nodes", registration(1))
	f := (l + 2) % 3
	tests := []struct {
		desc, method, path, body string
		status                   int
		field                    string
		serverOnly               bool // a rule the spec cannot express
	}{
		{"malformed JSON", "PUT", "/api/nodes/00000001/state", `{"state":`, 400, "", false},
		{"not an object", "PUT", "/api/nodes/00000001/state", `[1,2]`, 400, "", false},
		{"trailing data", "PUT", "/api/nodes/00000001/state", `{"state":"enabled"} {}`, 400, "", true},
		{"empty body", "PUT", "/api/nodes/00000001/state", ``, 400, "", false},
		{"unknown field", "PUT", "/api/nodes/00000001/state", `{"state":"enabled","colour":"red"}`, 400, "colour", false},
		{"wrong type", "PUT", "/api/nodes/00000001/state", `{"state":5}`, 400, "state", false},
		{"missing field", "PUT", "/api/nodes/00000001/state", `{}`, 422, "state", false},
		{"bad MAC", "POST", "/api/nodes", `{"mac":"zz","inventory":{}}`, 422, "mac", false},
		{"multicast MAC", "POST", "/api/nodes", `{"mac":"01:00:5e:00:00:01","inventory":{}}`, 422, "mac", true},
		{"nested wrong type", "POST", "/api/nodes", `{"mac":"02:00:00:00:00:09","inventory":{"memory_mb":"lots"}}`, 400, "inventory.memory_mb", false},
		{"nested unknown field", "POST", "/api/nodes", `{"mac":"02:00:00:00:00:09","inventory":{"gpu":1}}`, 400, "gpu", false},
		{"missing inventory", "POST", "/api/nodes", `{"mac":"02:00:00:00:00:09"}`, 422, "inventory", false},
		{"empty token name", "POST", "/api/tokens", `{"name":""}`, 422, "name", false},
		{"limit 0", "GET", "/api/nodes?limit=0", "", 400, "limit", false},
		{"limit not a number", "GET", "/api/nodes?limit=ten", "", 400, "limit", false},
		{"limit too big", "GET", "/api/events?limit=5000", "", 400, "limit", false},
		{"bad state filter", "GET", "/api/nodes?state=asleep", "", 400, "state", false},
		{"bad event cursor", "GET", "/api/events?after=x", "", 400, "after", true},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			// Writes go to a follower too: forwarding keeps the answer.
			for _, i := range []int{l, f} {
				e.t = t
				r := e.do(i, tt.method, tt.path, tt.body, invalidIf(!tt.serverOnly))
				if r.status != tt.status {
					t.Errorf("replica %d: status %d, want %d: %s", i, r.status, tt.status, r.body)
					continue
				}
				if got := r.errField(t); got != tt.field {
					t.Errorf("replica %d: error field %q, want %q (%s)", i, got, tt.field, r.body)
				}
			}
		})
	}
	e.t = t
	var n struct{ Items []any }
	e.do(l, "GET", "/api/nodes", "").json(t, &n)
	if len(n.Items) != 1 {
		t.Errorf("bad requests changed the state: %d nodes, want 1", len(n.Items))
	}
}

func TestClusterAndMetrics(t *testing.T) {
	e := newEnv(t)
	l := e.c.Leader(t)
	for i := range 3 {
		var c replica.Cluster
		replicatest.WaitFor(t, "every replica to know the leader's address", func() bool {
			_, ok := e.c.Replicas[i].LeaderAPI()
			return ok
		})
		e.do(i, "GET", "/api/cluster", "").json(t, &c)
		if c.Leader != e.c.Configs[l].ID || c.Term == 0 || len(c.Members) != 3 || c.Self != e.c.Configs[i].ID {
			t.Errorf("replica %d sees %+v; want leader %s", i, c, e.c.Configs[l].ID)
		}
	}
	e.do(l, "POST", "/api/nodes", registration(1))
	r := e.do(l, "GET", "/metrics", "", token(""))
	for _, want := range []string{"mvcontroller_api_requests_total", `route="POST /api/nodes"`, "mvcontroller_api_request_seconds"} {
		if !bytes.Contains(r.body, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestNoQuorumIs503AndNothingApplied(t *testing.T) {
	e := newEnv(t)
	l := e.c.Leader(t)
	e.do(l, "POST", "/api/nodes", registration(1))
	for i := range 3 {
		e.c.Isolate(i)
	}
	r := e.do(l, "POST", "/api/nodes", registration(2))
	if r.status != 503 || r.header.Get("Retry-After") == "" {
		t.Fatalf("write without quorum: %d %s, want 503 with Retry-After", r.status, r.body)
	}
	f := (l + 1) % 3
	if r := e.do(f, "PUT", "/api/nodes/00000001/state", `{"state":"disabled"}`); r.status != 503 || r.header.Get("Retry-After") == "" {
		t.Fatalf("write on an isolated follower: %d %s, want 503", r.status, r.body)
	}
	for i := range 3 {
		e.c.Heal(i)
	}
	nl := e.c.Leader(t)
	if r := e.do(nl, "POST", "/api/nodes", registration(3)); r.status != 201 {
		t.Fatalf("write after healing: %d %s", r.status, r.body)
	}
	for i := range 3 {
		replicatest.WaitFor(t, "replicas to converge", func() bool {
			var ok bool
			e.c.Replicas[i].Read(func(s *state.State) { _, ok = s.Nodes["00000003"] })
			return ok
		})
		e.c.Replicas[i].Read(func(s *state.State) {
			if _, ok := s.Nodes["00000002"]; ok {
				t.Errorf("replica %d applied the write that was answered 503", i)
			}
			if s.Nodes["00000001"].Admin != state.AdminEnabled {
				t.Errorf("replica %d applied the state change that was answered 503", i)
			}
		})
	}
}

func TestMembership(t *testing.T) {
	e := newEnv(t)
	l := e.c.Leader(t)
	e.do(l, "POST", "/api/nodes", registration(1))
	c4, raftAddr := e.c.Add(t, "c4", "127.0.0.1:1")
	f := (l + 1) % 3
	if r := e.do(f, "POST", "/api/cluster/members", `{"id":"c4"}`, invalidReq()); r.status != 422 || r.errField(t) != "raft_addr" {
		t.Errorf("join without raft_addr: %d %s, want 422 naming raft_addr", r.status, r.body)
	}
	r := e.do(f, "POST", "/api/cluster/members", `{"id":"c4","raft_addr":"`+raftAddr+`","api_addr":"127.0.0.1:1"}`)
	var joined struct{ Index uint64 }
	r.json(t, &joined)
	if r.status != 200 || joined.Index == 0 {
		t.Fatalf("join through a follower: %d %s", r.status, r.body)
	}
	replicatest.WaitFor(t, "c4 to catch up", func() bool { return c4.AppliedIndex() >= joined.Index })
	var n int
	c4.Read(func(s *state.State) { n = len(s.Nodes) })
	if n != 1 {
		t.Fatalf("caught-up joiner holds %d nodes, want 1", n)
	}
	if r := e.do(f, "POST", "/api/cluster/members/c4/promote", ""); r.status != 204 {
		t.Fatalf("promote: %d %s", r.status, r.body)
	}
	var c replica.Cluster
	e.do(l, "GET", "/api/cluster", "").json(t, &c)
	if len(c.Members) != 4 || !c.Members[3].Voter || c.Members[3].APIAddr != "127.0.0.1:1" {
		t.Fatalf("after promotion: %+v", c.Members)
	}
	if r := e.do(f, "POST", "/api/cluster/members/c9/promote", ""); r.status != 404 {
		t.Errorf("promote an unknown replica: %d %s, want 404", r.status, r.body)
	}
	if r := e.do(f, "DELETE", "/api/cluster/members/c4", ""); r.status != 204 {
		t.Fatalf("remove: %d %s", r.status, r.body)
	}
	e.do(l, "GET", "/api/cluster", "").json(t, &c)
	if len(c.Members) != 3 {
		t.Errorf("after removal: %+v", c.Members)
	}
}
