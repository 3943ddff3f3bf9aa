package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mvstack/mvstack/cmd/internal/mgmt"
	"github.com/mvstack/mvstack/proto"
)

func pingCommand() *cli.Command {
	return &cli.Command{
		Name:      "ping",
		Usage:     "measure round trips to a node through the control protocol",
		UsageText: "mvctl ping --iface IF --mvmac MAC [--count N] [--size BYTES] [--interval D]",
		Flags: withCommon(
			&cli.StringFlag{Name: "mvmac", Aliases: []string{"m"}, Usage: "the node's management MAC (colons optional)"},
			&cli.IntFlag{Name: "count", Aliases: []string{"c"}, Value: 5, Usage: "round trips to make"},
			&cli.IntFlag{Name: "size", Aliases: []string{"s"}, Value: 64, Usage: "payload bytes per request"},
			&cli.DurationFlag{Name: "interval", Value: 200 * time.Millisecond, Usage: "pause between round trips"},
		),
		Action: ping,
	}
}

type pingSummary struct {
	Node     string  `json:"node"`
	NodeID   string  `json:"node_id"`
	Iface    string  `json:"iface"`
	Sent     int     `json:"sent"`
	Received int     `json:"received"`
	MinUS    float64 `json:"min_us"`
	AvgUS    float64 `json:"avg_us"`
	P50US    float64 `json:"p50_us"`
	P99US    float64 `json:"p99_us"`
	MaxUS    float64 `json:"max_us"`
}

func ping(c *cli.Context) error {
	mac, err := mvmac(c)
	if err != nil {
		return err
	}
	count, size := c.Int("count"), c.Int("size")
	if count < 1 {
		return fmt.Errorf("--count %d: make at least one round trip", count)
	}
	if size < 0 || size > 16<<20 {
		return fmt.Errorf("--size %d: from 0 to 16 MiB", size)
	}
	ep, iface, err := openEndpoint(c)
	if err != nil {
		return err
	}
	defer ep.Close()
	payload := make([]byte, size)
	var rtts []time.Duration
	jsonOut := optBool(c, "json")
	for i := 1; i <= count; i++ {
		start := time.Now()
		got, err := ep.Call(c.Context, mac, proto.MethodPing, payload)
		rtt := time.Since(start)
		if err != nil {
			if c.Context.Err() != nil {
				break
			}
			if len(rtts) == 0 {
				return mgmt.Explain(err, mac, iface, optDuration(c, "tolerance"))
			}
			fmt.Fprintf(c.App.ErrWriter, "seq=%d: %v\n", i, mgmt.Explain(err, mac, iface, optDuration(c, "tolerance")))
			continue
		}
		if len(got) != size {
			return fmt.Errorf("seq=%d: the node answered %d bytes for %d", i, len(got), size)
		}
		rtts = append(rtts, rtt)
		if !jsonOut {
			fmt.Fprintf(c.App.Writer, "%d bytes from %s (node %s): seq=%d time=%.3f ms\n", size, mac, mac.NodeID(), i, float64(rtt.Microseconds())/1000)
		}
		if i < count {
			select {
			case <-c.Context.Done():
			case <-time.After(c.Duration("interval")):
			}
		}
	}
	s := summarize(mac, iface, count, rtts)
	if jsonOut {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	fmt.Fprintf(c.App.Writer, "--- %s ping statistics ---\n%d sent, %d received, %.0f%% loss\n", mac, s.Sent, s.Received, 100*float64(s.Sent-s.Received)/float64(s.Sent))
	if s.Received > 0 {
		fmt.Fprintf(c.App.Writer, "rtt min/avg/p50/p99/max = %.1f/%.1f/%.1f/%.1f/%.1f µs\n", s.MinUS, s.AvgUS, s.P50US, s.P99US, s.MaxUS)
	}
	if s.Received == 0 {
		return errors.New("no answer")
	}
	return nil
}

func summarize(mac proto.MAC, iface string, sent int, rtts []time.Duration) pingSummary {
	s := pingSummary{Node: mac.String(), NodeID: mac.NodeID(), Iface: iface, Sent: sent, Received: len(rtts)}
	if len(rtts) == 0 {
		return s
	}
	sorted := slices.Clone(rtts)
	slices.Sort(sorted)
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }
	var sum time.Duration
	for _, r := range rtts {
		sum += r
	}
	s.MinUS, s.MaxUS = us(sorted[0]), us(sorted[len(sorted)-1])
	s.AvgUS = us(sum / time.Duration(len(rtts)))
	s.P50US = us(sorted[len(sorted)/2])
	s.P99US = us(sorted[min(len(sorted)-1, len(sorted)*99/100)])
	return s
}
