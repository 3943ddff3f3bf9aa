// Command mvctl-perfc reads and resets a node's performance counters over
// raw Ethernet (seed 003 §2.6.2): --perfc-dump lists every counter,
// --perfc-get NAME one counter and those below its name, --perf-reset
// zeroes them; -d DOMID narrows to one domain, --interval prints rates as
// perf stat -I does.
package main

import (
	"context"
	"io"

	"github.com/mvstack/mvstack/cmd/internal/cmdmain"
)

func main() { cmdmain.Main("mvctl-perfc", run) }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return newApp(stdout, stderr).RunContext(ctx, args)
}
