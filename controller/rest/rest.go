package rest

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	apispec "github.com/mvstack/mvstack/api"
	"github.com/mvstack/mvstack/controller/replica"
	"github.com/mvstack/mvstack/controller/state"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Store is the replicated state as the API needs it (*replica.Replica).
type Store interface {
	Read(fn func(*state.State))
	Apply(ctx context.Context, c state.Command) (any, error)
	IsLeader() bool
	LeaderAPI() (string, bool)
	Cluster() (replica.Cluster, error)
}

// Membership changes the replica set (*replica.Replica).
type Membership interface {
	AddNonvoter(ctx context.Context, id, raftAddr, apiAddr string) (uint64, error)
	Promote(ctx context.Context, id string) error
	RemoveMember(ctx context.Context, id string) error
}

var (
	_ Store      = (*replica.Replica)(nil)
	_ Membership = (*replica.Replica)(nil)
)

// Config holds the handler's dependencies.
type Config struct {
	Store   Store
	Members Membership
	// Metrics receives the API figures and is served at /metrics; nil
	// makes a private registry.
	Metrics *prometheus.Registry
	// Client forwards writes to the leader; nil uses a client with a 10 s
	// timeout.
	Client *http.Client
	// Volumes attaches, repairs and fences volumes through the nodes; nil
	// (no node-facing side) answers those routes 501.
	Volumes Volumes
	Logger  *slog.Logger // nil discards
}

// ForwardedHeader marks a request a follower forwarded to the leader.
const ForwardedHeader = "X-Mvstack-Forwarded"

// Handler is the REST API.
type Handler struct {
	cfg   Config
	log   *slog.Logger
	mux   *http.ServeMux
	proxy *httputil.ReverseProxy
	reqs  *prometheus.CounterVec
	dur   *prometheus.HistogramVec
}

var _ http.Handler = (*Handler)(nil)

// New builds the handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Store == nil || cfg.Members == nil {
		return nil, errors.New("rest: Config.Store and Config.Members are required")
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	h := &Handler{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux()}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.reqs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mvcontroller_api_requests_total", Help: "REST requests by route and status code.",
	}, []string{"route", "code"})
	h.dur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "mvcontroller_api_request_seconds", Help: "REST request latency by route.",
		Buckets: prometheus.ExponentialBuckets(0.0002, 2, 16),
	}, []string{"route"})
	if err := cfg.Metrics.Register(h.reqs); err != nil {
		return nil, err
	}
	if err := cfg.Metrics.Register(h.dur); err != nil {
		return nil, err
	}
	h.proxy = &httputil.ReverseProxy{
		Rewrite:   func(*httputil.ProxyRequest) {}, // set per request in forward
		Transport: cfg.Client.Transport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			writeError(w, unavailable("forwarding to the leader failed: %v", err))
		},
	}

	h.route("GET /api/openapi.yaml", false, h.openapi)
	h.mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Metrics, promhttp.HandlerOpts{}))
	h.route("GET /api/nodes", true, h.listNodes)
	h.route("POST /api/nodes", true, h.registerNode)
	h.route("GET /api/nodes/{id}", true, h.getNode)
	h.route("DELETE /api/nodes/{id}", true, h.deleteNode)
	h.route("GET /api/nodes/{id}/state", true, h.getState)
	h.route("PUT /api/nodes/{id}/state", true, h.setState)
	h.route("GET /api/cores", true, h.listCores)
	h.route("GET /api/events", true, h.listEvents)
	h.route("GET /api/cluster", true, h.getCluster)
	h.route("POST /api/cluster/members", true, h.addMember)
	h.route("DELETE /api/cluster/members/{id}", true, h.removeMember)
	h.route("POST /api/cluster/members/{id}/promote", true, h.promote)
	h.route("GET /api/tokens", true, h.listTokens)
	h.route("POST /api/tokens", true, h.createToken)
	h.route("DELETE /api/tokens/{id}", true, h.revokeToken)
	h.route("GET /api/disks", true, h.listDisks)
	h.route("GET /api/datastores", true, h.listDatastores)
	h.route("POST /api/datastores", true, h.createDatastore)
	h.route("GET /api/datastores/{id}", true, h.getDatastore)
	h.route("DELETE /api/datastores/{id}", true, h.deleteDatastore)
	h.route("POST /api/datastores/{id}/disks", true, h.addDisks)
	h.route("DELETE /api/datastores/{id}/disks", true, h.removeDisks)
	h.route("GET /api/volumes", true, h.listVolumes)
	h.route("POST /api/volumes", true, h.createVolume)
	h.route("GET /api/volumes/{id}", true, h.getVolume)
	h.route("PATCH /api/volumes/{id}", true, h.resizeVolume)
	h.route("DELETE /api/volumes/{id}", true, h.deleteVolume)
	h.route("POST /api/volumes/{id}/attach", true, h.attachVolume)
	h.route("POST /api/volumes/{id}/detach", true, h.detachVolume)
	h.route("POST /api/volumes/{id}/repair", true, h.repairVolume)
	h.route("POST /api/volumes/{id}/fence", true, h.fenceVolume)
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, notFound("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

type handlerFunc func(w http.ResponseWriter, r *http.Request) *apiError

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (h *Handler) route(pattern string, auth bool, fn handlerFunc) {
	method, _, _ := strings.Cut(pattern, " ")
	write := method != http.MethodGet
	h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			h.reqs.WithLabelValues(pattern, strconv.Itoa(sw.code)).Inc()
			h.dur.WithLabelValues(pattern).Observe(time.Since(start).Seconds())
		}()
		if auth {
			if e := h.authenticate(r); e != nil {
				writeError(sw, e)
				return
			}
		}
		if write && !h.cfg.Store.IsLeader() {
			h.forward(sw, r)
			return
		}
		if e := fn(sw, r); e != nil {
			writeError(sw, e)
		}
	})
}

func (h *Handler) authenticate(r *http.Request) *apiError {
	unauth := func(msg string) *apiError {
		return &apiError{Status: http.StatusUnauthorized, Code: "unauthorized", Field: "Authorization", Message: msg}
	}
	v := r.Header.Get("Authorization")
	if v == "" {
		return unauth("no token: send Authorization: Bearer <token>")
	}
	scheme, tok, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return unauth("Authorization must be Bearer <token>")
	}
	id, hash, err := ParseToken(tok)
	if err != nil {
		return unauth("bad token")
	}
	var good bool
	h.cfg.Store.Read(func(s *state.State) { _, good = s.CheckToken(id, hash) })
	if !good {
		return unauth("bad token")
	}
	return nil
}

// forward relays a write to the leader.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(ForwardedHeader) != "" {
		writeError(w, unavailable("forwarded write reached a replica that does not lead"))
		return
	}
	addr, ok := h.cfg.Store.LeaderAPI()
	if !ok {
		writeError(w, unavailable("no leader is known; nothing was applied"))
		return
	}
	target := &url.URL{Scheme: "http", Host: addr}
	p := *h.proxy
	p.Rewrite = func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Header.Set(ForwardedHeader, "1")
	}
	p.ServeHTTP(w, r)
}

func (h *Handler) openapi(w http.ResponseWriter, r *http.Request) *apiError {
	w.Header().Set("Content-Type", "application/yaml")
	w.Write(apispec.OpenAPI())
	return nil
}

// page reads limit and after.
func page(r *http.Request) (int, string, *apiError) {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, "", badRequest("limit", "limit %q is not an integer", v)
		}
		if n < 1 || n > 1000 {
			return 0, "", badRequest("limit", "limit %d is outside 1..1000", n)
		}
		limit = n
	}
	return limit, r.URL.Query().Get("after"), nil
}

// list is a page of items.
type list[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next,omitempty"`
}

// paginate returns the items after the cursor; items are in key order and
// after(item) reports whether an item comes after the cursor.
func paginate[T any](items []T, limit int, after func(T) bool, key func(T) string) list[T] {
	i := sort.Search(len(items), func(i int) bool { return after(items[i]) })
	items = items[i:]
	l := list[T]{Items: []T{}}
	if len(items) > limit {
		l.Next = key(items[limit-1])
		items = items[:limit]
	}
	l.Items = append(l.Items, items...)
	return l
}
