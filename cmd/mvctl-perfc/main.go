// Command mvctl-perfc reads and resets a node's performance counters over
// raw Ethernet (seed 003 §2.6.2): --perfc-dump lists every counter,
// --perfc-get NAME one counter and those below its name, --perf-reset
// zeroes them; -d DOMID narrows to one domain, --interval prints rates as
// perf stat -I does.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mvctl-perfc:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return newApp(stdout, stderr).RunContext(ctx, args)
}
