package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/mvstack/mvstack/cmd/internal/mgmt"
	"github.com/mvstack/mvstack/proto"
)

func keygenCommand() *cli.Command {
	return &cli.Command{
		Name:  "keygen",
		Usage: "make a cluster key file (mode 0600) for every node, controller and tool",
		Description: `Writes a new random cluster key. Copy the file to every host of the cluster.

To rotate the key without downtime: 'mvctl keygen --add --out FILE' adds a second key
that hosts accept; once every host has it, 'mvctl keygen --promote --out FILE' makes it the
one they send with; once every host has that, 'mvctl keygen --drop-old --out FILE'.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Value: mgmt.DefaultKeyFile, Usage: "key file to write"},
			&cli.BoolFlag{Name: "force", Usage: "replace an existing key file"},
			&cli.BoolFlag{Name: "add", Usage: "add a new key after the current one (rotation, step 1)"},
			&cli.BoolFlag{Name: "promote", Usage: "make the second key the one used to send (rotation, step 2)"},
			&cli.BoolFlag{Name: "drop-old", Usage: "remove the key that is no longer used to send (rotation, step 3)"},
		},
		Action: func(c *cli.Context) error {
			path := c.String("out")
			steps := 0
			for _, f := range []string{"add", "promote", "drop-old"} {
				if c.Bool(f) {
					steps++
				}
			}
			if steps > 1 {
				return errors.New("give at most one of --add, --promote and --drop-old")
			}
			if steps == 0 {
				if _, err := os.Stat(path); err == nil && !c.Bool("force") {
					return fmt.Errorf("%s exists: pass --force to replace it (every host must then get the new file)", path)
				}
				k, err := proto.NewKey(1)
				if err != nil {
					return err
				}
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					return err
				}
				if err := proto.WriteKeyFile(path, k); err != nil {
					return err
				}
				fmt.Fprintf(c.App.Writer, "wrote a new cluster key to %s (id %d); copy it to every host\n", path, k.ID)
				return nil
			}
			ring, err := proto.LoadKeyring(path)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("%s does not exist: make it first with 'mvctl keygen --out %s'", path, path)
				}
				return err
			}
			keys := ring.Keys()
			switch {
			case c.Bool("add"):
				if len(keys) == 2 {
					return fmt.Errorf("%s already holds two keys: finish the rotation with --promote and --drop-old", path)
				}
				k, err := proto.NewKey(keys[0].ID + 1)
				if err != nil {
					return err
				}
				keys = append(keys, k)
			case c.Bool("promote"):
				if len(keys) != 2 {
					return fmt.Errorf("%s holds one key: add one first with --add", path)
				}
				keys[0], keys[1] = keys[1], keys[0]
			case c.Bool("drop-old"):
				if len(keys) != 2 {
					return fmt.Errorf("%s holds one key: nothing to drop", path)
				}
				keys = keys[:1]
			}
			if err := proto.WriteKeyFile(path, keys...); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "%s now holds %d key(s); the one used to send has id %d\n", path, len(keys), keys[0].ID)
			return nil
		},
	}
}
