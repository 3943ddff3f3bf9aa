// Command mvstatsd is the stats aggregator: it receives stat frames
// (EtherType 0x88B6) from the nodes, stores them as round-robin databases,
// and serves them over HTTP (JSON, PNG/SVG graphs, Prometheus /metrics).
// `mvstatsd rrd` works on the files with rrdtool's commands and syntax.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if _, printed := err.(printedError); printed {
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "mvstatsd:", err)
		os.Exit(1)
	}
}
