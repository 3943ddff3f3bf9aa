package rest

import (
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/mvstack/mvstack/controller/state"
	"github.com/mvstack/mvstack/proto"
)

// nodeJSON is a node as the API shows it: with its derived host state.
type nodeJSON struct {
	state.Node
	State state.HostState `json:"state"`
}

func viewNode(n *state.Node) nodeJSON { return nodeJSON{Node: *n, State: n.State()} }

type stateJSON struct {
	ID          string           `json:"id"`
	State       state.HostState  `json:"state"`
	Admin       state.AdminState `json:"admin_state"`
	Health      state.Health     `json:"health"`
	Reason      string           `json:"reason,omitempty"`
	Schedulable bool             `json:"schedulable"`
}

func viewState(n state.Node) stateJSON {
	return stateJSON{ID: n.ID, State: n.State(), Admin: n.Admin, Health: n.Health, Reason: n.Reason, Schedulable: n.State().Schedulable()}
}

func now() time.Time { return time.Now().UTC() }

func (h *Handler) listNodes(w http.ResponseWriter, r *http.Request) *apiError {
	limit, after, e := page(r)
	if e != nil {
		return e
	}
	want := state.HostState(r.URL.Query().Get("state"))
	switch want {
	case "", state.HostEnabled, state.HostDisabled, state.HostOffline, state.HostFlush, state.HostError, state.HostRetry:
	default:
		return badRequest("state", "state %q is not a host state", want)
	}
	var ns []nodeJSON
	h.cfg.Store.Read(func(s *state.State) {
		for _, n := range s.SortedNodes() {
			if want == "" || n.State() == want {
				ns = append(ns, viewNode(n))
			}
		}
	})
	writeJSON(w, http.StatusOK, paginate(ns, limit, func(n nodeJSON) bool { return n.ID > after }, func(n nodeJSON) string { return n.ID }))
	return nil
}

type registration struct {
	MAC       *string          `json:"mac"`
	Inventory *state.Inventory `json:"inventory"`
}

func (h *Handler) registerNode(w http.ResponseWriter, r *http.Request) *apiError {
	var req registration
	if e := decode(w, r, &req); e != nil {
		return e
	}
	if req.MAC == nil {
		return invalid("mac", "mac is required")
	}
	if req.Inventory == nil {
		return invalid("inventory", "inventory is required")
	}
	mac, err := proto.ParseMAC(*req.MAC)
	if err != nil {
		return invalid("mac", "%v", err)
	}
	res, err := h.cfg.Store.Apply(r.Context(), state.RegisterNode{At: now(), MAC: mac, Inventory: *req.Inventory})
	if err != nil {
		return fromApply(err, "mac")
	}
	n := res.(state.Node)
	writeJSON(w, http.StatusCreated, viewNode(&n))
	return nil
}

func (h *Handler) node(id string) (state.Node, *apiError) {
	var n *state.Node
	h.cfg.Store.Read(func(s *state.State) { n = s.Nodes[id] })
	if n == nil {
		return state.Node{}, notFound("no node %q", id)
	}
	return *n, nil
}

func (h *Handler) getNode(w http.ResponseWriter, r *http.Request) *apiError {
	n, e := h.node(r.PathValue("id"))
	if e != nil {
		return e
	}
	writeJSON(w, http.StatusOK, viewNode(&n))
	return nil
}

func (h *Handler) deleteNode(w http.ResponseWriter, r *http.Request) *apiError {
	if _, err := h.cfg.Store.Apply(r.Context(), state.RemoveNode{At: now(), Node: r.PathValue("id")}); err != nil {
		return fromApply(err, "")
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) getState(w http.ResponseWriter, r *http.Request) *apiError {
	n, e := h.node(r.PathValue("id"))
	if e != nil {
		return e
	}
	writeJSON(w, http.StatusOK, viewState(n))
	return nil
}

func (h *Handler) setState(w http.ResponseWriter, r *http.Request) *apiError {
	var req struct {
		State *string `json:"state"`
	}
	if e := decode(w, r, &req); e != nil {
		return e
	}
	if req.State == nil {
		return invalid("state", "state is required: one of enabled, disabled, offline, flush")
	}
	a, err := state.ParseAdminState(*req.State)
	if err != nil {
		return invalid("state", "%v", err)
	}
	id := r.PathValue("id")
	if _, e := h.node(id); e != nil {
		return e
	}
	res, err := h.cfg.Store.Apply(r.Context(), state.SetAdmin{At: now(), Node: id, State: a})
	if err != nil {
		return fromApply(err, "state")
	}
	writeJSON(w, http.StatusOK, viewState(res.(state.Node)))
	return nil
}

func (h *Handler) listCores(w http.ResponseWriter, r *http.Request) *apiError {
	limit, after, e := page(r)
	if e != nil {
		return e
	}
	only := r.URL.Query().Get("node")
	var cs []state.Core
	h.cfg.Store.Read(func(s *state.State) {
		for _, n := range s.SortedNodes() {
			if only == "" || n.ID == only {
				cs = append(cs, n.Cores()...)
			}
		}
	})
	sort.Slice(cs, func(i, j int) bool { return cs[i].ID < cs[j].ID })
	writeJSON(w, http.StatusOK, paginate(cs, limit, func(c state.Core) bool { return c.ID > after }, func(c state.Core) string { return c.ID }))
	return nil
}

func (h *Handler) listEvents(w http.ResponseWriter, r *http.Request) *apiError {
	limit, afterS, e := page(r)
	if e != nil {
		return e
	}
	var after uint64
	if afterS != "" {
		v, err := strconv.ParseUint(afterS, 10, 64)
		if err != nil {
			return badRequest("after", "after %q is not an event sequence number", afterS)
		}
		after = v
	}
	only := r.URL.Query().Get("node")
	var es []state.Event
	h.cfg.Store.Read(func(s *state.State) {
		for _, ev := range s.Events {
			if only == "" || ev.Node == only {
				es = append(es, ev)
			}
		}
	})
	writeJSON(w, http.StatusOK, paginate(es, limit, func(ev state.Event) bool { return ev.Seq > after },
		func(ev state.Event) string { return strconv.FormatUint(ev.Seq, 10) }))
	return nil
}

func (h *Handler) getCluster(w http.ResponseWriter, r *http.Request) *apiError {
	c, err := h.cfg.Store.Cluster()
	if err != nil {
		return fromApply(err, "")
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

func (h *Handler) addMember(w http.ResponseWriter, r *http.Request) *apiError {
	var req struct {
		ID       string `json:"id"`
		RaftAddr string `json:"raft_addr"`
		APIAddr  string `json:"api_addr"`
	}
	if e := decode(w, r, &req); e != nil {
		return e
	}
	if req.ID == "" {
		return invalid("id", "id is required")
	}
	if req.RaftAddr == "" {
		return invalid("raft_addr", "raft_addr is required")
	}
	idx, err := h.cfg.Members.AddNonvoter(r.Context(), req.ID, req.RaftAddr, req.APIAddr)
	if err != nil {
		return fromApply(err, "id")
	}
	writeJSON(w, http.StatusOK, map[string]uint64{"index": idx})
	return nil
}

func (h *Handler) removeMember(w http.ResponseWriter, r *http.Request) *apiError {
	if err := h.cfg.Members.RemoveMember(r.Context(), r.PathValue("id")); err != nil {
		return fromApply(err, "")
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) promote(w http.ResponseWriter, r *http.Request) *apiError {
	if err := h.cfg.Members.Promote(r.Context(), r.PathValue("id")); err != nil {
		return fromApply(err, "")
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) listTokens(w http.ResponseWriter, r *http.Request) *apiError {
	ts := []state.Token{}
	h.cfg.Store.Read(func(s *state.State) {
		for _, t := range s.Tokens {
			ts = append(ts, t)
		}
	})
	sort.Slice(ts, func(i, j int) bool { return ts[i].ID < ts[j].ID })
	writeJSON(w, http.StatusOK, list[state.Token]{Items: ts})
	return nil
}

func (h *Handler) createToken(w http.ResponseWriter, r *http.Request) *apiError {
	var req struct {
		Name *string `json:"name"`
	}
	if e := decode(w, r, &req); e != nil {
		return e
	}
	if req.Name == nil || *req.Name == "" {
		return invalid("name", "name is required")
	}
	tok, id, hash := NewToken()
	res, err := h.cfg.Store.Apply(r.Context(), state.CreateToken{At: now(), ID: id, Name: *req.Name, Hash: hash})
	if err != nil {
		return fromApply(err, "name")
	}
	t := res.(state.Token)
	writeJSON(w, http.StatusCreated, createdToken{ID: t.ID, Name: t.Name, Created: t.Created, Token: tok})
	return nil
}

func (h *Handler) revokeToken(w http.ResponseWriter, r *http.Request) *apiError {
	if _, err := h.cfg.Store.Apply(r.Context(), state.RevokeToken{At: now(), ID: r.PathValue("id")}); err != nil {
		return fromApply(err, "")
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type createdToken struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	Token   string    `json:"token"`
}
