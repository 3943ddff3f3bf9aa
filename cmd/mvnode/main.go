// Command mvnode is the node daemon: it describes the node's hardware,
// runs domains (simulated, or QEMU guests), answers mvctl and the
// controller on the control protocol, sends heartbeats and serves
// /metrics. See docs/node-daemon.md.
package main

import (
	"context"
	"io"

	"github.com/mvstack/mvstack/cmd/internal/cmdmain"
)

func main() { cmdmain.Main("mvnode", run) }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return newApp(stdout, stderr).RunContext(ctx, args)
}
