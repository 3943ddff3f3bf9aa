// Command mvaoe serves files as AoE targets, finds AoE targets, and serves
// an AoE device to QEMU and the NBD tools.
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
	defer stop()
	if err := run(ctx, os.Args, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mvaoe:", err)
		os.Exit(1)
	}
}
