package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mvstack/mvstack/aoe/initiator"
	"github.com/mvstack/mvstack/controller/dbbackup"
	"github.com/mvstack/mvstack/controller/replica"
	"github.com/mvstack/mvstack/controller/state"
	"github.com/mvstack/mvstack/controller/volumes"
	"github.com/mvstack/mvstack/node/domain"
	"github.com/mvstack/mvstack/node/nodeclient"
	"github.com/mvstack/mvstack/node/volume"
	"github.com/mvstack/mvstack/proto"
)

// The db_metadata volume from the controller: snapshots are written
// through node/volume's replicated client over an AoE initiator on the
// management interface (a new AF_PACKET link per copy), and read back by
// restore.

// aoeOpener opens a volume on iface. ctl is told when a replica fails.
func aoeOpener(iface string, ctl volume.Controller, log *slog.Logger) dbbackup.Opener {
	return func(ctx context.Context, spec nodeclient.VolumeSpec) (dbbackup.Target, error) {
		link, err := proto.OpenPacketLink(iface, proto.EtherTypeAoE, nil)
		if err != nil {
			return nil, fmt.Errorf("AoE on %s: %w", iface, err)
		}
		cfg := volume.DefaultConfig()
		cfg.ID, cfg.Links, cfg.Size, cfg.Epoch, cfg.Controller, cfg.Logger = spec.ID, []proto.Link{link}, int64(spec.SizeMB)<<20, spec.Epoch, ctl, log
		for _, r := range spec.Replicas {
			cfg.Replicas = append(cfg.Replicas, volume.Replica{Node: r.Node, Shelf: r.Shelf, Slot: r.Slot, MAC: r.MAC, Stale: !r.InSync})
		}
		v, err := volume.Open(ctx, cfg)
		if err != nil {
			link.Close()
			return nil, err
		}
		return &aoeTarget{Volume: v, link: link}, nil
	}
}

type aoeTarget struct {
	*volume.Volume
	link proto.Link
}

func (t *aoeTarget) Close() error { return errors.Join(t.Volume.Close(), t.link.Close()) }

// stateController is the controller as the volume client on the
// controller itself sees it: set_in_sync applied straight to raft.
type stateController struct {
	rep atomic.Pointer[replica.Replica]
}

var _ volume.Controller = (*stateController)(nil)

func (c *stateController) SetInSync(ctx context.Context, req nodeclient.SetInSyncRequest) (nodeclient.VolumeSpec, error) {
	r := c.rep.Load()
	if r == nil {
		return nodeclient.VolumeSpec{}, errors.New("controller not started")
	}
	res, err := r.Apply(ctx, state.SetInSync{At: time.Now().UTC(), Volume: req.Volume, Epoch: req.Epoch, InSync: req.InSync})
	switch {
	case errors.Is(err, state.ErrStaleEpoch):
		return nodeclient.VolumeSpec{}, fmt.Errorf("%w: %v", nodeclient.ErrStaleEpoch, err)
	case err != nil:
		return nodeclient.VolumeSpec{}, err
	}
	v := res.(state.Volume)
	var sp nodeclient.VolumeSpec
	r.Read(func(s *state.State) { sp = volumes.Spec(s, &v) })
	return sp, nil
}

func (c *stateController) Volume(ctx context.Context, id string) (nodeclient.VolumeSpec, error) {
	r := c.rep.Load()
	if r == nil {
		return nodeclient.VolumeSpec{}, errors.New("controller not started")
	}
	var sp nodeclient.VolumeSpec
	var ok bool
	r.Read(func(s *state.State) {
		if v := s.Volumes[id]; v != nil {
			sp, ok = volumes.Spec(s, v), true
		}
	})
	if !ok {
		return sp, fmt.Errorf("%w: volume %q", domain.ErrNotFound, id)
	}
	return sp, nil
}

// deviceReader reads an AoE device as an io.ReaderAt.
type deviceReader struct {
	ctx context.Context
	d   *initiator.Device
}

func (r deviceReader) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > r.d.Size() {
		return 0, io.ErrUnexpectedEOF
	}
	return r.d.ReadAtContext(r.ctx, p, off)
}

// parseAddr reads "shelf.slot".
func parseAddr(s string) (uint16, uint8, error) {
	a, b, ok := strings.Cut(s, ".")
	shelf, err1 := strconv.ParseUint(a, 10, 16)
	slot, err2 := strconv.ParseUint(b, 10, 8)
	if !ok || err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("--replica %q: want SHELF.SLOT, e.g. 1000.0", s)
	}
	return uint16(shelf), uint8(slot), nil
}

// found is one image read off a target.
type found struct {
	shelf uint16
	slot  uint8
	h     dbbackup.Header
	data  []byte
}

// scanImages reads the newest image off each named target (every target
// from shelf state.ExportShelfBase up when addrs is empty).
func scanImages(ctx context.Context, in *initiator.Initiator, addrs []string, log io.Writer) ([]found, error) {
	type addr struct {
		shelf uint16
		slot  uint8
	}
	var targets []addr
	for _, a := range addrs {
		sh, sl, err := parseAddr(a)
		if err != nil {
			return nil, err
		}
		targets = append(targets, addr{sh, sl})
	}
	if len(targets) == 0 {
		infos, err := in.Discover(ctx, 0xffff, 0xff)
		if err != nil {
			return nil, fmt.Errorf("AoE discovery: %w", err)
		}
		seen := map[addr]bool{}
		for _, t := range infos {
			if a := (addr{t.Shelf, t.Slot}); t.Shelf >= state.ExportShelfBase && !seen[a] {
				seen[a] = true
				targets = append(targets, a)
			}
		}
		fmt.Fprintf(log, "restore: %d volume replicas answer AoE discovery\n", len(targets))
	}
	var out []found
	for _, t := range targets {
		d, err := in.Open(ctx, t.shelf, t.slot)
		if err != nil {
			fmt.Fprintf(log, "restore: %d.%d: %v\n", t.shelf, t.slot, err)
			continue
		}
		// Read at the target's own epoch: registering does not raise it.
		if e, err := d.TargetEpoch(ctx); err == nil && e > 0 {
			if err := d.SetEpoch(ctx, e); err != nil {
				fmt.Fprintf(log, "restore: %d.%d: registering at epoch %d: %v\n", t.shelf, t.slot, e, err)
			}
		}
		h, data, err := dbbackup.ReadLatest(deviceReader{ctx, d}, d.Size())
		d.Close()
		if err != nil {
			if !errors.Is(err, dbbackup.ErrNoImage) || len(addrs) > 0 {
				fmt.Fprintf(log, "restore: %d.%d: %v\n", t.shelf, t.slot, err)
			}
			continue
		}
		fmt.Fprintf(log, "restore: %d.%d: snapshot index %d term %d, %d bytes, written %s by %s\n",
			t.shelf, t.slot, h.Index, h.Term, h.Length, h.At.Format(time.RFC3339), h.Writer)
		out = append(out, found{t.shelf, t.slot, h, data})
	}
	return out, nil
}

func restoreCommand(ctx context.Context, stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "restore",
		Usage: "start a new cluster from a raft snapshot copied to a db_metadata volume",
		Description: "Reads the newest snapshot image off the db_metadata volume's replicas over AoE on --iface\n" +
			"(the replicas named with --replica, or every volume replica that answers discovery) and installs it\n" +
			"into an empty --data-dir, with --bootstrap (or this replica alone) as the voters. Then run serve on that\n" +
			"data dir (without --bootstrap: the configuration comes from the snapshot).\n" +
			"Example:\n  mvcontroller restore --from-volume --iface eth0 --data-dir /var/lib/mvcontroller --id c1 --raft-addr 10.0.0.1:7000 \\\n" +
			"    --bootstrap c1=10.0.0.1:7000 --bootstrap c2=10.0.0.2:7000 --bootstrap c3=10.0.0.3:7000",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "from-volume", Required: true, Usage: "read the snapshot off the db_metadata volume (the only source for now)"},
			&cli.StringFlag{Name: "iface", Required: true, Usage: "interface the volume's replicas are reachable on over AoE"},
			&cli.StringSliceFlag{Name: "replica", Usage: "SHELF.SLOT of a replica of the volume, repeated (default: every volume replica answering discovery)"},
			&cli.StringFlag{Name: "data-dir", Required: true, Usage: "empty directory for raft.db and snapshots"},
			&cli.StringFlag{Name: "id", Required: true, Usage: "this replica's id"},
			&cli.StringFlag{Name: "raft-addr", Required: true, Usage: "this replica's raft host:port"},
			&cli.StringSliceFlag{Name: "bootstrap", Usage: "voter ID=RAFT_ADDR[/HTTP_ADDR] of the new cluster, repeated (default: this replica alone)"},
			&cli.DurationFlag{Name: "timeout", Value: time.Minute, Usage: "give up after this long"},
		},
		Action: func(c *cli.Context) error {
			peers := []replica.Peer{{ID: c.String("id"), RaftAddr: c.String("raft-addr")}}
			if bs := c.StringSlice("bootstrap"); len(bs) > 0 {
				peers = nil
				for _, s := range bs {
					p, err := parsePeer(s)
					if err != nil {
						return err
					}
					peers = append(peers, p)
				}
			}
			ctx, cancel := context.WithTimeout(ctx, c.Duration("timeout"))
			defer cancel()
			link, err := proto.OpenPacketLink(c.String("iface"), proto.EtherTypeAoE, nil)
			if err != nil {
				return fmt.Errorf("--iface %s: %w", c.String("iface"), err)
			}
			defer link.Close()
			icfg := initiator.DefaultConfig()
			icfg.Links = []proto.Link{link}
			in, err := initiator.New(icfg)
			if err != nil {
				return err
			}
			defer in.Close()
			imgs, err := scanImages(ctx, in, c.StringSlice("replica"), stdout)
			if err != nil {
				return err
			}
			if len(imgs) == 0 {
				return errors.New("restore: no replica holds a snapshot image (is the db_metadata volume's node up, and --iface the management interface?)")
			}
			best := imgs[0]
			for _, f := range imgs[1:] {
				if f.h.Index > best.h.Index || f.h.Index == best.h.Index && f.h.At.After(best.h.At) {
					best = f
				}
			}
			if err := replica.InstallSnapshot(c.String("data-dir"), peers, best.h.Index, best.h.Term, best.data); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "restored snapshot index %d term %d (%d bytes, written %s by %s) from %d.%d into %s\n",
				best.h.Index, best.h.Term, best.h.Length, best.h.At.Format(time.RFC3339), best.h.Writer, best.shelf, best.slot, c.String("data-dir"))
			return nil
		},
	}
}
