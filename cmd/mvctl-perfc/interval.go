package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/mvstack/mvstack/perfc"
	"github.com/mvstack/mvstack/perfc/perfcrpc"
)

// rate is one metric's line in an interval.
type rate struct {
	Domain string     `json:"domain,omitempty"`
	Name   string     `json:"name"`
	Kind   perfc.Kind `json:"kind"`
	Unit   string     `json:"unit"`
	// Count is the increase over the interval (a gauge's level).
	Count int64 `json:"count"`
	// PerSec is Count over the interval's length; absent for gauges.
	PerSec *float64    `json:"per_sec,omitempty"`
	State  perfc.State `json:"state,omitempty"`
}

// interval is one printed interval.
type interval struct {
	Time    float64 `json:"time"`     // seconds since the first read
	Seconds float64 `json:"interval"` // this interval's length in seconds
	Rates   []rate  `json:"metrics"`
}

// poll reads the counters every o.interval and prints their increases and
// rates, as perf stat -I does, until ctx ends or o.count intervals passed.
// The first read carries descriptions and units; later ones leave them out.
func poll(ctx context.Context, client *perfcrpc.Client, o options, w io.Writer) error {
	req := o.req
	prev, err := client.Do(ctx, o.node, req)
	if err != nil {
		return quiet(ctx, err)
	}
	units := map[string]string{}
	for _, m := range prev.Metrics {
		units[m.Path()] = m.Unit
	}
	req.Query.NoDesc = true
	start := time.Now()
	last := start
	tick := time.NewTicker(o.interval)
	defer tick.Stop()
	if !o.json {
		fmt.Fprintf(w, "# node %s (%s), every %v; counts are increases over the interval\n", o.node.NodeID(), o.node, o.interval)
		fmt.Fprintf(w, "%-14s %14s %14s  %-10s %s\n", "#  time", "counts", "rate", "unit", "counter")
	}
	enc := json.NewEncoder(w)
	for i := 0; o.count == 0 || i < o.count; i++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		cur, err := client.Do(ctx, o.node, req)
		if err != nil {
			return quiet(ctx, err)
		}
		now := time.Now()
		iv := interval{Time: now.Sub(start).Seconds(), Seconds: now.Sub(last).Seconds()}
		for _, m := range cur.Delta(prev).Metrics {
			r := rate{Domain: m.Domain, Name: m.Name, Kind: m.Kind, Unit: units[m.Path()], Count: m.Value, State: m.State}
			if m.Kind != perfc.KindGauge && m.State == perfc.StateOK && iv.Seconds > 0 {
				ps := float64(m.Value) / iv.Seconds
				r.PerSec = &ps
			}
			iv.Rates = append(iv.Rates, r)
		}
		prev, last = cur, now
		if o.json {
			if err := enc.Encode(iv); err != nil {
				return err
			}
			continue
		}
		if err := writeInterval(w, iv); err != nil {
			return err
		}
	}
	return nil
}

// quiet makes an interruption a clean end, as with perf stat.
func quiet(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func writeInterval(w io.Writer, iv interval) error {
	for _, r := range iv.Rates {
		count, per := fmt.Sprint(r.Count), ""
		switch {
		case r.State != perfc.StateOK:
			count = "<" + r.State.String() + ">"
		case r.PerSec != nil:
			per = fmt.Sprintf("%.1f/s", *r.PerSec)
		}
		name := r.Name
		if r.Domain != "" {
			name = r.Domain + "/" + r.Name
		}
		if _, err := fmt.Fprintf(w, "%14.6f %14s %14s  %-10s %s\n", iv.Time, count, per, r.Unit, name); err != nil {
			return err
		}
	}
	return nil
}
