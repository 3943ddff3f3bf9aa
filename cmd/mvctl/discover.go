package main

import (
	"time"

	"github.com/urfave/cli/v2"
)

func discoverCommand() *cli.Command {
	return &cli.Command{
		Name:  "discover",
		Usage: "list the nodes on the segment: id, MAC, hostname, hypervisor, location, cores, memory, domains",
		Flags: withCommon(
			&cli.DurationFlag{Name: "window", Value: 500 * time.Millisecond, Usage: "how long to collect answers"},
		),
		Action: discoverNodes,
	}
}
