package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/mvstack/mvstack/controller/client"
	"github.com/urfave/cli/v2"
)

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	out := []cli.Flag{
		&cli.BoolFlag{Name: "json", Usage: "Return the output as json."},
		&cli.StringFlag{Name: "filter", Usage: "Filter the values you want to see from the output (comma-separated keys, e.g. id,state)."},
	}
	withOut := func(fs ...cli.Flag) []cli.Flag { return append(fs, out...) }
	app := &cli.App{
		Name:      "osd",
		Usage:     "manage an mvstack rack through its controller",
		Writer:    stdout,
		ErrWriter: stderr,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "url", EnvVars: []string{"OSD_URL"}, Usage: "controller REST address (any replica)"},
			&cli.StringFlag{Name: "token", EnvVars: []string{"OSD_TOKEN"}, Usage: "API token"},
			&cli.StringFlag{Name: "config", EnvVars: []string{"OSD_CONFIG"}, Usage: "config file of url=… and token=… lines (default ~/.config/osd/config)"},
		},
		Commands: append([]*cli.Command{
			{
				Name: "get_nodes", Usage: "List the MicroVisor nodes.",
				Description: "List the MicroVisor nodes.\n\nExample:\n  osd get_nodes --state=error --filter=id,state",
				Flags:       withOut(&cli.StringFlag{Name: "state", Usage: "Only nodes in this state: enabled, disabled, offline, flush, error, retry."}),
				Action: func(c *cli.Context) error {
					q := url.Values{}
					if s := c.String("state"); s != "" {
						q.Set("state", s)
					}
					items, err := list(ctx, c, "/api/nodes", q)
					if err != nil {
						return err
					}
					return print(c, stdout, items)
				},
			},
			{
				Name: "get_node", Usage: "Show one node.",
				Description: "Show one node: inventory, state and monitoring.\n\nExample:\n  osd get_node --id=7a77f9af",
				Flags:       withOut(&cli.StringFlag{Name: "id", Required: true, Usage: "The node id (low 32 bits of its MAC in hex)."}),
				Action: func(c *cli.Context) error {
					v, err := get(ctx, c, "GET", "/api/nodes/"+url.PathEscape(c.String("id")), nil)
					if err != nil {
						return err
					}
					return print(c, stdout, v)
				},
			},
			{
				Name: "set_node_state", Usage: "Enable, disable, offline or flush a node.",
				Description: "Set a node's mode. error and retry are set by monitoring.\n\nExample:\n  osd set_node_state --id=7a77f9af --state=disabled",
				Flags: withOut(
					&cli.StringFlag{Name: "id", Required: true, Usage: "The node id."},
					&cli.StringFlag{Name: "state", Required: true, Usage: "enabled, disabled, offline or flush."},
				),
				Action: func(c *cli.Context) error {
					v, err := get(ctx, c, "PUT", "/api/nodes/"+url.PathEscape(c.String("id"))+"/state", map[string]string{"state": c.String("state")})
					if err != nil {
						return err
					}
					return print(c, stdout, v)
				},
			},
			{
				Name: "get_cores", Usage: "List physical cores with their NUMA node.",
				Flags: withOut(&cli.StringFlag{Name: "node", Usage: "Only the cores of this node."}),
				Action: func(c *cli.Context) error {
					q := url.Values{}
					if s := c.String("node"); s != "" {
						q.Set("node", s)
					}
					items, err := list(ctx, c, "/api/cores", q)
					if err != nil {
						return err
					}
					return print(c, stdout, items)
				},
			},
			{
				Name: "get_events", Usage: "Show the events log.",
				Flags: withOut(&cli.StringFlag{Name: "node", Usage: "Only events of this node."}),
				Action: func(c *cli.Context) error {
					q := url.Values{}
					if s := c.String("node"); s != "" {
						q.Set("node", s)
					}
					items, err := list(ctx, c, "/api/events", q)
					if err != nil {
						return err
					}
					return print(c, stdout, items)
				},
			},
			{
				Name: "get_cluster", Usage: "Show the controller replicas, the leader and the raft term.",
				Flags: out,
				Action: func(c *cli.Context) error {
					v, err := get(ctx, c, "GET", "/api/cluster", nil)
					if err != nil {
						return err
					}
					return print(c, stdout, v)
				},
			},
		}, storageCommands(ctx, stdout, withOut)...),
	}
	return app.RunContext(ctx, args)
}

// settings resolves url and token: flag, then environment (both through
// urfave/cli), then the config file.
func settings(c *cli.Context) (u, token string, err error) {
	u, token = c.String("url"), c.String("token")
	path := c.String("config")
	explicit := path != ""
	if !explicit {
		if home, herr := os.UserHomeDir(); herr == nil {
			path = filepath.Join(home, ".config", "osd", "config")
		}
	}
	if path != "" && (u == "" || token == "") {
		f, ferr := os.Open(path)
		switch {
		case ferr == nil:
			defer f.Close()
			sc := bufio.NewScanner(f)
			for n := 1; sc.Scan(); n++ {
				line := strings.TrimSpace(sc.Text())
				if line == "" || strings.HasPrefix(line, "#") {
					continue
				}
				k, v, ok := strings.Cut(line, "=")
				if !ok {
					return "", "", fmt.Errorf("config %s line %d: want key=value, got %q", path, n, line)
				}
				switch strings.TrimSpace(k) {
				case "url":
					if u == "" {
						u = strings.TrimSpace(v)
					}
				case "token":
					if token == "" {
						token = strings.TrimSpace(v)
					}
				default:
					return "", "", fmt.Errorf("config %s line %d: unknown key %q (want url or token)", path, n, k)
				}
			}
		case explicit || !errors.Is(ferr, os.ErrNotExist):
			return "", "", fmt.Errorf("config: %w", ferr)
		}
	}
	if u == "" {
		return "", "", errors.New("no controller URL: give --url, OSD_URL or url= in the config file")
	}
	return u, token, nil
}

func api(c *cli.Context) (*client.Client, error) {
	u, tok, err := settings(c)
	if err != nil {
		return nil, err
	}
	return client.New(u, tok), nil
}

// get fetches one object.
func get(ctx context.Context, c *cli.Context, method, path string, in any) (any, error) {
	cl, err := api(c)
	if err != nil {
		return nil, err
	}
	var v any
	if err := cl.Do(ctx, method, path, in, &v); err != nil {
		return nil, err
	}
	return v, nil
}

// list pages through a list endpoint.
func list(ctx context.Context, c *cli.Context, path string, q url.Values) ([]any, error) {
	cl, err := api(c)
	if err != nil {
		return nil, err
	}
	var all []any
	for {
		var page struct {
			Items []any
			Next  string
		}
		q.Set("limit", "1000")
		if err := cl.Do(ctx, "GET", path+"?"+q.Encode(), nil, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Items...)
		if page.Next == "" {
			return all, nil
		}
		q.Set("after", page.Next)
	}
}
