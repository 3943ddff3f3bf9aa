// Command osd is the mvstack controller's command-line client, mirroring the
// MicroVisor osd CLI: get_nodes, get_node, set_node_state, get_cluster, …
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
		fmt.Fprintln(os.Stderr, "osd:", err)
		os.Exit(1)
	}
}
