package aggregator

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mvstack/mvstack/statsd/rrd"
)

// Series describes one stored series in /api/series.
type Series struct {
	Entity string            `json:"entity"`
	Kind   Kind              `json:"kind"`
	Labels map[string]string `json:"labels"`
	DS     []string          `json:"ds"`
	// Last is the time of the last update, Unix seconds (0: none yet).
	Last float64 `json:"last"`
	// Latest holds the last values as sent, by data source (counters as
	// counts, not rates); absent before the first update since start.
	Latest map[string]*float64 `json:"latest,omitempty"`
}

// FetchResponse is the answer of /api/fetch.
type FetchResponse struct {
	Entity string   `json:"entity"`
	CF     string   `json:"cf"`
	Start  int64    `json:"start"`
	End    int64    `json:"end"`
	Step   uint64   `json:"step"`
	DS     []string `json:"ds"`
	// Rows holds, per step, its end time (Unix seconds) then one value per
	// data source, null when unknown.
	Rows [][]*float64 `json:"rows"`
}

// Handler returns the HTTP API:
//
//	GET /api/series[?kind=K&node=N]    the series stored, as []Series
//	GET /api/fetch?entity=E[&ds=a,b][&cf=AVERAGE][&start=T][&end=T][&resolution=S]
//	GET /graph.png, /graph.svg         the same arguments and width, height (pixels)
//	GET /metrics                       latest values and the aggregator's counters
//
// Times are Unix seconds, "now", or a Go duration relative to now
// ("-1h"); start defaults to an hour before end, end to now.
func (a *Aggregator) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/series", a.serveSeries)
	mux.HandleFunc("GET /api/fetch", a.serveFetch)
	mux.HandleFunc("GET /graph.png", a.serveGraph)
	mux.HandleFunc("GET /graph.svg", a.serveGraph)
	reg := prometheus.NewRegistry()
	reg.MustRegister(&collector{a: a})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

// List returns the series, sorted by entity name, optionally narrowed to a
// kind and a node.
func (a *Aggregator) List(kind Kind, node string) []Series {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []Series
	for _, e := range a.entities {
		if kind != "" && e.kind != kind || node != "" && e.labels["node"] != node {
			continue
		}
		if !e.exists && e.last == 0 {
			continue
		}
		s := Series{Entity: e.name, Kind: e.kind, Labels: make(map[string]string, len(e.labels)),
			DS: DSNames(e.kind), Last: float64(e.last) / 1e9}
		for k, v := range e.labels {
			s.Labels[k] = v
		}
		if e.latest != nil {
			s.Latest = map[string]*float64{}
			for i, d := range s.DS {
				s.Latest[d] = num(e.latest[i])
			}
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(x, y Series) int { return strings.Compare(x.Entity, y.Entity) })
	return out
}

func num(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

func (a *Aggregator) serveSeries(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, a.List(Kind(r.FormValue("kind")), r.FormValue("node")))
}

// ErrNotFound reports a series that does not exist.
var ErrNotFound = errors.New("aggregator: no such series")

// Fetch reads a series between two times (Unix seconds) at a resolution
// (seconds; 0 the finest), narrowed to some data sources (none: all).
func (a *Aggregator) Fetch(entity string, ds []string, cf rrd.CF, start, end int64, res uint64) (*FetchResponse, error) {
	a.mu.Lock()
	e := a.entities[entity]
	ok := e != nil && e.exists
	a.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, entity)
	}
	fr, err := a.store.Fetch(entity+".rrd", cf, start, end, res)
	if err != nil {
		return nil, err
	}
	cols := make([]int, 0, len(fr.DSNames))
	names := ds
	if len(ds) == 0 {
		names = fr.DSNames
	}
	for _, d := range names {
		i := slices.Index(fr.DSNames, d)
		if i < 0 {
			return nil, fmt.Errorf("%w: %q has no data source %q (it has %s)", ErrNotFound, entity, d, strings.Join(fr.DSNames, ", "))
		}
		cols = append(cols, i)
	}
	out := &FetchResponse{Entity: entity, CF: cf.String(), Start: fr.Start, End: fr.End, Step: fr.Step, DS: names}
	for i, row := range fr.Rows {
		t := float64(fr.Start + int64(fr.Step)*int64(i+1))
		r := []*float64{&t}
		for _, c := range cols {
			r = append(r, num(row[c]))
		}
		out.Rows = append(out.Rows, r)
	}
	return out, nil
}

// fetchArgs parses the arguments /api/fetch and the graphs share.
func fetchArgs(r *http.Request, now time.Time) (entity string, ds []string, cf rrd.CF, start, end int64, res uint64, err error) {
	entity = r.FormValue("entity")
	if entity == "" {
		return "", nil, 0, 0, 0, 0, errors.New("entity is required, e.g. entity=7a77f9af/host (see /api/series)")
	}
	if v := r.FormValue("ds"); v != "" {
		ds = strings.Split(v, ",")
	}
	cf = rrd.Average
	if v := r.FormValue("cf"); v != "" {
		if cf, err = rrd.ParseCF(strings.ToUpper(v)); err != nil {
			return "", nil, 0, 0, 0, 0, fmt.Errorf("cf=%q: AVERAGE, MIN, MAX or LAST", v)
		}
	}
	end = now.Unix()
	if v := r.FormValue("end"); v != "" {
		if end, err = parseTime(v, now); err != nil {
			return "", nil, 0, 0, 0, 0, fmt.Errorf("end=%q: %w", v, err)
		}
	}
	start = end - 3600
	if v := r.FormValue("start"); v != "" {
		if start, err = parseTime(v, now); err != nil {
			return "", nil, 0, 0, 0, 0, fmt.Errorf("start=%q: %w", v, err)
		}
	}
	if start > end {
		return "", nil, 0, 0, 0, 0, fmt.Errorf("start %d is after end %d", start, end)
	}
	if v := r.FormValue("resolution"); v != "" {
		if res, err = strconv.ParseUint(v, 10, 64); err != nil {
			return "", nil, 0, 0, 0, 0, fmt.Errorf("resolution=%q: seconds", v)
		}
	}
	return entity, ds, cf, start, end, res, nil
}

// parseTime reads Unix seconds, "now" or a duration relative to now.
func parseTime(s string, now time.Time) (int64, error) {
	if s == "now" || s == "N" {
		return now.Unix(), nil
	}
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(d).Unix(), nil
	}
	return 0, errors.New("want Unix seconds, now, or a duration such as -1h")
}

func (a *Aggregator) serveFetch(w http.ResponseWriter, r *http.Request) {
	entity, ds, cf, start, end, res, err := fetchArgs(r, time.Now())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	fr, err := a.Fetch(entity, ds, cf, start, end, res)
	if err != nil {
		httpError(w, err)
		return
	}
	writeJSON(w, fr)
}

func httpError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, rrd.ErrNoRRA), errors.Is(err, rrd.ErrFetch):
		code = http.StatusBadRequest
	}
	http.Error(w, err.Error(), code)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
