// Command mvctl manages MicroVisor-style nodes over raw Ethernet: it makes
// cluster keys, pings nodes through the control protocol, and answers pings
// as a stand-in node.
package main

import (
	"context"
	"io"

	"github.com/mvstack/mvstack/cmd/internal/cmdmain"
)

func main() { cmdmain.Main("mvctl", run) }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return newApp(stdout, stderr).RunContext(ctx, args)
}
