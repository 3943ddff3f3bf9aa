// Command mvcontroller runs a replica of the mvstack controller (raft over
// TCP, REST API over HTTP) and manages its API tokens.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mvcontroller:", err)
		os.Exit(1)
	}
}
