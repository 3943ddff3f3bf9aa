package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mvstack/mvstack/controller"
	"github.com/mvstack/mvstack/controller/client"
	"github.com/mvstack/mvstack/controller/ethnodes"
	"github.com/mvstack/mvstack/controller/replica"
	"github.com/mvstack/mvstack/controller/rest"
	"github.com/mvstack/mvstack/proto"
	"github.com/urfave/cli/v2"
)

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	tokenFlags := []cli.Flag{
		&cli.StringFlag{Name: "url", Value: "http://127.0.0.1:8080", EnvVars: []string{"MVCONTROLLER_URL"}, Usage: "REST address of any replica"},
		&cli.StringFlag{Name: "token", EnvVars: []string{"MVCONTROLLER_TOKEN"}, Usage: "bearer token"},
		&cli.StringFlag{Name: "token-file", EnvVars: []string{"MVCONTROLLER_TOKEN_FILE"}, Usage: "file holding the bearer token (e.g. the admin token)"},
	}
	app := &cli.App{
		Name:      "mvcontroller",
		Usage:     "run a replica of the mvstack controller",
		Writer:    stdout,
		ErrWriter: stderr,
		Commands: []*cli.Command{
			{
				Name:  "serve",
				Usage: "run a controller replica",
				Description: "Bootstrap a new cluster by starting every initial replica with the same --bootstrap list,\n" +
					"or add a replica to a running cluster with --join. Writes to a follower are forwarded to the leader.\n" +
					"Example:\n  mvcontroller serve --id c1 --raft-addr 10.0.0.1:7000 --http-addr 10.0.0.1:8080 --data-dir /var/lib/mvcontroller \\\n" +
					"    --bootstrap c1=10.0.0.1:7000/10.0.0.1:8080 --bootstrap c2=10.0.0.2:7000/10.0.0.2:8080 --bootstrap c3=10.0.0.3:7000/10.0.0.3:8080 \\\n" +
					"    --iface eth0 --key /etc/mvstack/cluster.key\n" +
					"With --iface, the leader discovers nodes on that interface, receives their heartbeats and probes the silent ones\n" +
					"over the control protocol (EtherType 0x88B5), authenticated with the cluster key.",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "id", Required: true, Usage: "replica id, unique in the cluster"},
					&cli.StringFlag{Name: "raft-addr", Value: "127.0.0.1:7000", Usage: "host:port for raft between replicas (TCP)"},
					&cli.StringFlag{Name: "http-addr", Value: "127.0.0.1:8080", Usage: "host:port for the REST API"},
					&cli.StringFlag{Name: "advertise-http", Usage: "REST address other replicas forward to (default: --http-addr)"},
					&cli.StringFlag{Name: "data-dir", Required: true, Usage: "directory for raft.db and snapshots"},
					&cli.StringSliceFlag{Name: "bootstrap", Usage: "initial voter ID=RAFT_ADDR[/HTTP_ADDR], repeated for each (self included)"},
					&cli.StringFlag{Name: "join", Usage: "REST URL of a running replica to join through (as a non-voter, promoted once caught up)"},
					&cli.StringFlag{Name: "admin-token-file", Usage: "admin token file; created with a fresh token if missing; the leader makes sure the token exists"},
					&cli.StringFlag{Name: "join-token", EnvVars: []string{"MVCONTROLLER_TOKEN"}, Usage: "token for --join (default: the admin token)"},
					&cli.DurationFlag{Name: "heartbeat-timeout", Value: replica.DefaultConfig().HeartbeatTimeout, Usage: "raft heartbeat timeout"},
					&cli.DurationFlag{Name: "election-timeout", Value: replica.DefaultConfig().ElectionTimeout, Usage: "raft election timeout"},
					&cli.DurationFlag{Name: "lease-timeout", Value: replica.DefaultConfig().LeaderLeaseTimeout, Usage: "raft leader lease timeout"},
					&cli.StringFlag{Name: "iface", Usage: "management interface: discover, watch and probe nodes over the control protocol on it (without it, nodes are registered over REST only and not monitored)"},
					&cli.StringFlag{Name: "key", Value: "/etc/mvstack/cluster.key", EnvVars: []string{"MVSTACK_KEY"}, Usage: "cluster key file (with --iface)"},
					&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
					&cli.DurationFlag{Name: "snapshot-interval", Value: replica.DefaultConfig().SnapshotInterval, Usage: "how often raft considers taking a snapshot"},
					&cli.Uint64Flag{Name: "snapshot-threshold", Value: replica.DefaultConfig().SnapshotThreshold, Usage: "log entries since the last snapshot before raft takes one"},
					&cli.DurationFlag{Name: "db-backup-interval", Value: controller.DefaultConfig().DBBackup.Interval,
						Usage: "with --iface: how often the leader copies a new raft snapshot to the db_metadata volume over AoE (0: never)"},
				},
				Action: func(c *cli.Context) error { return serve(ctx, c, stdout, stderr) },
			},
			restoreCommand(ctx, stdout),
			{
				Name:  "token",
				Usage: "manage API tokens",
				Subcommands: []*cli.Command{
					{
						Name: "create", Usage: "create a token; prints it once", Flags: append([]cli.Flag{
							&cli.StringFlag{Name: "name", Required: true, Usage: "what the token is for"},
						}, tokenFlags...),
						Action: func(c *cli.Context) error {
							var out struct{ ID, Name, Token string }
							if err := apiClient(c).Do(ctx, "POST", "/api/tokens", map[string]string{"name": c.String("name")}, &out); err != nil {
								return err
							}
							fmt.Fprintf(stdout, "id=%s\nname=%s\ntoken=%s\n", out.ID, out.Name, out.Token)
							return nil
						},
					},
					{
						Name: "list", Usage: "list tokens (never their secrets)", Flags: tokenFlags,
						Action: func(c *cli.Context) error {
							var out struct {
								Items []struct {
									ID, Name string
									Created  time.Time
								}
							}
							if err := apiClient(c).Do(ctx, "GET", "/api/tokens", nil, &out); err != nil {
								return err
							}
							for _, t := range out.Items {
								fmt.Fprintf(stdout, "id=%s name=%s created=%s\n", t.ID, t.Name, t.Created.Format(time.RFC3339))
							}
							return nil
						},
					},
					{
						Name: "revoke", Usage: "revoke a token", ArgsUsage: "ID", Flags: tokenFlags,
						Action: func(c *cli.Context) error {
							if c.NArg() != 1 {
								return fmt.Errorf("token revoke: want exactly one token id, got %d arguments", c.NArg())
							}
							return apiClient(c).Do(ctx, "DELETE", "/api/tokens/"+c.Args().First(), nil, nil)
						},
					},
					{
						Name: "new", Usage: "print a fresh token without contacting a controller (for --admin-token-file)",
						Action: func(c *cli.Context) error {
							tok, _, _ := rest.NewToken()
							fmt.Fprintln(stdout, tok)
							return nil
						},
					},
				},
			},
		},
	}
	return app.RunContext(ctx, args)
}

func apiClient(c *cli.Context) *client.Client {
	tok := c.String("token")
	if tok == "" && c.String("token-file") != "" {
		b, err := os.ReadFile(c.String("token-file"))
		if err == nil {
			tok = strings.TrimSpace(string(b))
		}
	}
	return client.New(c.String("url"), tok)
}

func parsePeer(s string) (replica.Peer, error) {
	id, addrs, ok := strings.Cut(s, "=")
	if !ok || id == "" || addrs == "" {
		return replica.Peer{}, fmt.Errorf("--bootstrap %q: want ID=RAFT_ADDR[/HTTP_ADDR]", s)
	}
	raftAddr, api, _ := strings.Cut(addrs, "/")
	return replica.Peer{ID: id, RaftAddr: raftAddr, APIAddr: api}, nil
}

func adminToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		tok, _, _ := rest.NewToken()
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return "", err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) { // another replica wrote it first
			return adminToken(path)
		}
		if err != nil {
			return "", err
		}
		_, werr := fmt.Fprintln(f, tok)
		if err := errors.Join(werr, f.Close()); err != nil {
			return "", err
		}
		return tok, nil
	}
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if _, _, err := rest.ParseToken(tok); err != nil {
		return "", fmt.Errorf("--admin-token-file %s: %w", path, err)
	}
	return tok, nil
}

func serve(ctx context.Context, c *cli.Context, stdout, stderr io.Writer) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return fmt.Errorf("--log-level %q: %w", c.String("log-level"), err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg := controller.DefaultConfig()
	cfg.Logger = log
	cfg.HTTPAddr = c.String("http-addr")
	cfg.Replica.ID = c.String("id")
	cfg.Replica.RaftAddr = c.String("raft-addr")
	cfg.Replica.APIAddr = c.String("advertise-http")
	if cfg.Replica.APIAddr == "" {
		cfg.Replica.APIAddr = cfg.HTTPAddr
	}
	cfg.Replica.DataDir = c.String("data-dir")
	cfg.Replica.HeartbeatTimeout = c.Duration("heartbeat-timeout")
	cfg.Replica.ElectionTimeout = c.Duration("election-timeout")
	cfg.Replica.LeaderLeaseTimeout = c.Duration("lease-timeout")
	cfg.Replica.SnapshotInterval = c.Duration("snapshot-interval")
	cfg.Replica.SnapshotThreshold = c.Uint64("snapshot-threshold")
	for _, s := range c.StringSlice("bootstrap") {
		p, err := parsePeer(s)
		if err != nil {
			return err
		}
		cfg.Replica.Bootstrap = append(cfg.Replica.Bootstrap, p)
	}
	if len(cfg.Replica.Bootstrap) > 0 && c.String("join") != "" {
		return errors.New("--bootstrap and --join exclude each other")
	}
	var admin string
	if p := c.String("admin-token-file"); p != "" {
		tok, err := adminToken(p)
		if err != nil {
			return fmt.Errorf("--admin-token-file: %w", err)
		}
		admin = tok
		cfg.AdminTokens = []string{tok}
	}
	var nodes *ethnodes.Source
	if iface := c.String("iface"); iface != "" {
		var err error
		if nodes, err = openNodes(iface, c.String("key"), log); err != nil {
			return err
		}
		defer nodes.Close()
		cfg.Nodes = nodes
	}
	sc := &stateController{}
	if iface := c.String("iface"); iface != "" && c.Duration("db-backup-interval") > 0 {
		cfg.DBBackup.Open = aoeOpener(iface, sc, log)
		cfg.DBBackup.Interval = c.Duration("db-backup-interval")
	}
	srv, err := controller.New(cfg)
	if err != nil {
		return err
	}
	sc.rep.Store(srv.Replica())
	fmt.Fprintf(stdout, "mvcontroller: replica %s raft %s http %s data %s\n", cfg.Replica.ID, cfg.Replica.RaftAddr, srv.APIAddr(), cfg.Replica.DataDir)
	if nodes != nil {
		fmt.Fprintf(stdout, "mvcontroller: nodes on %s as %s\n", c.String("iface"), nodes.Addr())
	}
	if u := c.String("join"); u != "" {
		tok := c.String("join-token")
		if tok == "" {
			tok = admin
		}
		if err := join(ctx, client.New(u, tok), srv, cfg); err != nil {
			log.Error("join failed", "err", err)
		}
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// openNodes opens the node-facing side on the management interface.
func openNodes(iface, keyFile string, log *slog.Logger) (*ethnodes.Source, error) {
	keys, err := proto.LoadKeyring(keyFile)
	if err != nil {
		return nil, fmt.Errorf("--key: %w", err)
	}
	link, err := proto.OpenPacketLink(iface, proto.EtherTypeControl, nil)
	if err != nil {
		return nil, fmt.Errorf("--iface %s: %w", iface, err)
	}
	cfg := ethnodes.DefaultConfig()
	cfg.Link, cfg.Keys, cfg.Logger = link, keys, log
	return ethnodes.New(cfg)
}

// join adds this replica as a non-voter through any replica, waits until it
// has applied the leader's log as of joining, and asks to be promoted.
func join(ctx context.Context, cl *client.Client, srv *controller.Server, cfg controller.Config) error {
	var out struct{ Index uint64 }
	body := map[string]string{"id": cfg.Replica.ID, "raft_addr": cfg.Replica.RaftAddr, "api_addr": cfg.Replica.APIAddr}
	for {
		err := cl.Do(ctx, "POST", "/api/cluster/members", body, &out)
		if err == nil {
			break
		}
		var ae *client.Error
		if errors.As(err, &ae) && ae.Status != 503 {
			return fmt.Errorf("join through %s: %w", cl.URL, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond): // retrying a remote service
		}
	}
	for srv.Replica().AppliedIndex() < out.Index {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return cl.Do(ctx, "POST", "/api/cluster/members/"+cfg.Replica.ID+"/promote", nil, nil)
}
