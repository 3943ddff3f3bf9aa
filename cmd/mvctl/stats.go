package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// statsCommand is `mvctl stats`: queries a running mvstatsd's HTTP API.
func statsCommand() *cli.Command {
	urlFlag := &cli.StringFlag{Name: "url", EnvVars: []string{"MVSTATSD_URL"}, Value: "http://127.0.0.1:8086",
		Usage: "mvstatsd's HTTP address (http://host:port or unix:/path/to/socket)"}
	return &cli.Command{
		Name:  "stats",
		Usage: "query a running mvstatsd: the series it stores and their values between two times",
		Subcommands: []*cli.Command{
			{
				Name:      "series",
				Usage:     "list the series (entities and their data sources)",
				UsageText: "mvctl stats series [--url URL] [--kind host|pcpu|numa|pool|domain|vcpu|vif|vbd] [--node ID] [--json]",
				Flags: withCommon(urlFlag,
					&cli.StringFlag{Name: "kind", Usage: "only series of this kind"},
					&cli.StringFlag{Name: "node", Usage: "only series of this node (its id, e.g. 7a77f9af)"},
				),
				Action: statsSeries,
			},
			{
				Name:      "fetch",
				Usage:     "print a series between two times",
				UsageText: "mvctl stats fetch --entity NODE/host [--ds a,b] [--cf AVERAGE|MIN|MAX|LAST] [--start -1h] [--end now] [--resolution S] [--json]",
				Flags: withCommon(urlFlag,
					&cli.StringFlag{Name: "entity", Aliases: []string{"e"}, Usage: "the series, as 'mvctl stats series' lists it"},
					&cli.StringFlag{Name: "ds", Usage: "data sources, comma-separated (default: all)"},
					&cli.StringFlag{Name: "cf", Value: "AVERAGE", Usage: "consolidation function: AVERAGE, MIN, MAX or LAST"},
					&cli.StringFlag{Name: "start", Value: "-1h", Usage: "Unix seconds, now, or a duration before now (-1h)"},
					&cli.StringFlag{Name: "end", Value: "now", Usage: "Unix seconds, now, or a duration before now"},
					&cli.Uint64Flag{Name: "resolution", Aliases: []string{"r"}, Usage: "seconds per row (default: the finest)"},
				),
				Action: statsFetch,
			},
		},
	}
}

// statsClient returns an HTTP client and base URL for --url.
func statsClient(c *cli.Context) (*http.Client, string, error) {
	u := optString(c, "url")
	if p, ok := strings.CutPrefix(u, "unix:"); ok {
		tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", p)
		}}
		return &http.Client{Transport: tr, Timeout: 30 * time.Second}, "http://mvstatsd", nil
	}
	if _, err := url.Parse(u); err != nil || !strings.HasPrefix(u, "http") {
		return nil, "", fmt.Errorf("--url %q: want http://host:port or unix:/path", u)
	}
	return &http.Client{Timeout: 30 * time.Second}, strings.TrimSuffix(u, "/"), nil
}

// statsGet fetches path?q from mvstatsd and decodes the JSON answer into v,
// or copies it raw to w when v is nil.
func statsGet(c *cli.Context, path string, q url.Values, v any, w io.Writer) error {
	hc, base, err := statsClient(c)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(c.Context, "GET", base+path+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("mvstatsd at %s: %w", optString(c, "url"), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("mvstatsd: %s", strings.TrimSpace(string(body)))
	}
	if v == nil {
		_, err = w.Write(body)
		return err
	}
	return json.Unmarshal(body, v)
}

// statsSeriesEntry mirrors the fields of mvstatsd's /api/series we print.
type statsSeriesEntry struct {
	Entity string              `json:"entity"`
	Kind   string              `json:"kind"`
	Labels map[string]string   `json:"labels"`
	DS     []string            `json:"ds"`
	Last   float64             `json:"last"`
	Latest map[string]*float64 `json:"latest"`
}

func statsSeries(c *cli.Context) error {
	q := url.Values{}
	if k := c.String("kind"); k != "" {
		q.Set("kind", k)
	}
	if n := c.String("node"); n != "" {
		q.Set("node", n)
	}
	if optBool(c, "json") {
		return statsGet(c, "/api/series", q, nil, c.App.Writer)
	}
	var series []statsSeriesEntry
	if err := statsGet(c, "/api/series", q, &series, nil); err != nil {
		return err
	}
	w := c.App.Writer
	for _, s := range series {
		fmt.Fprintf(w, "entity=%s kind=%s", s.Entity, s.Kind)
		keys := make([]string, 0, len(s.Labels))
		for k := range s.Labels {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(w, " %s=%s", k, s.Labels[k])
		}
		fmt.Fprintf(w, " ds=%s last=%d\n", strings.Join(s.DS, ","), int64(s.Last))
	}
	return nil
}

// statsFetchResponse mirrors mvstatsd's /api/fetch answer.
type statsFetchResponse struct {
	Entity string       `json:"entity"`
	CF     string       `json:"cf"`
	Step   uint64       `json:"step"`
	DS     []string     `json:"ds"`
	Rows   [][]*float64 `json:"rows"`
}

func statsFetch(c *cli.Context) error {
	entity := c.String("entity")
	if entity == "" {
		return fmt.Errorf("--entity is required: a series as 'mvctl stats series' lists it, e.g. --entity 7a77f9af/host")
	}
	q := url.Values{"entity": {entity}, "cf": {strings.ToUpper(c.String("cf"))},
		"start": {c.String("start")}, "end": {c.String("end")}}
	if ds := c.String("ds"); ds != "" {
		q.Set("ds", ds)
	}
	if r := c.Uint64("resolution"); r > 0 {
		q.Set("resolution", strconv.FormatUint(r, 10))
	}
	if optBool(c, "json") {
		return statsGet(c, "/api/fetch", q, nil, c.App.Writer)
	}
	var fr statsFetchResponse
	if err := statsGet(c, "/api/fetch", q, &fr, nil); err != nil {
		return err
	}
	// rrdtool fetch's layout: the data source names, then time: values.
	w := c.App.Writer
	fmt.Fprintf(w, "%12s", "")
	for _, d := range fr.DS {
		fmt.Fprintf(w, " %16s", d)
	}
	fmt.Fprintln(w)
	for _, row := range fr.Rows {
		fmt.Fprintf(w, "%10d:", int64(*row[0]))
		for _, v := range row[1:] {
			if v == nil {
				fmt.Fprintf(w, " %16s", "-nan")
			} else {
				fmt.Fprintf(w, " %16.10e", *v)
			}
		}
		fmt.Fprintln(w)
	}
	return nil
}
