// Command mvlab runs a whole mvstack rack on one machine: network namespaces
// on a bridge stand in for the hosts, and the real daemons run in them.
package main

import (
	"context"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/mvstack/mvstack/cmd/internal/cmdmain"
)

func main() { cmdmain.Main("mvlab", run) }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	app := &cli.App{
		Name:      "mvlab",
		Usage:     "a whole mvstack rack on this machine, in network namespaces (needs root)",
		Writer:    stdout,
		ErrWriter: stderr,
		Commands: []*cli.Command{
			{
				Name:        "demo",
				Usage:       "make a rack, walk through what it does, and remove it",
				Description: demoDescription,
				Flags: []cli.Flag{
					&cli.IntFlag{Name: "nodes", Value: 3, Usage: "node namespaces to make (1 to 50; the storage part needs 3)"},
					&cli.BoolFlag{Name: "storage", Value: true, Usage: "after the nodes, run the controller and a replicated volume (--storage=false to skip)"},
					&cli.StringFlag{Name: "bin", Usage: "directory of the mvstack binaries (default: this program's)"},
					&cli.BoolFlag{Name: "keep", Usage: "leave the rack running until interrupted"},
				},
				Action: demo,
			},
			{
				Name:  "down",
				Usage: "remove everything a lab left behind (namespaces named mvlab-*, their processes, its temporary directories)",
				Action: func(c *cli.Context) error {
					if err := needRoot(); err != nil {
						return err
					}
					n, err := removeLeftovers()
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "removed %d namespace(s) and %d temporary director(ies)\n", n, removeTempDirs())
					return nil
				},
			},
		},
		ExitErrHandler: func(*cli.Context, error) {},
	}
	return app.RunContext(ctx, args)
}
