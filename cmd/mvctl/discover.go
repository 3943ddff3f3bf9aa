package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
)

func discoverCommand() *cli.Command {
	return &cli.Command{
		Name:  "discover",
		Usage: "list the nodes that answer on the segment",
		Flags: withCommon(
			&cli.DurationFlag{Name: "window", Value: 500 * time.Millisecond, Usage: "how long to collect answers"},
		),
		Action: func(c *cli.Context) error {
			ep, iface, err := openEndpoint(c)
			if err != nil {
				return err
			}
			defer ep.Close()
			replies, err := ep.Discover(c.Context, MethodIdentify, nil, c.Duration("window"))
			if err != nil {
				return err
			}
			type node struct {
				MAC    string `json:"mac"`
				NodeID string `json:"node_id"`
				Says   string `json:"says,omitempty"`
				Error  string `json:"error,omitempty"`
			}
			nodes := make([]node, 0, len(replies))
			for _, r := range replies {
				n := node{MAC: r.From.String(), NodeID: r.From.NodeID(), Says: string(r.Payload)}
				if r.Err != nil {
					n.Error = r.Err.Error()
				}
				nodes = append(nodes, n)
			}
			if optBool(c, "json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(nodes)
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "MAC\tNODE\tANSWER")
			for _, n := range nodes {
				says := n.Says
				if n.Error != "" {
					says = "error: " + n.Error
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", n.MAC, n.NodeID, says)
			}
			tw.Flush()
			fmt.Fprintf(c.App.Writer, "%d node(s) answered on %s within %v\n", len(nodes), iface, c.Duration("window"))
			return nil
		},
	}
}
