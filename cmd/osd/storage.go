package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"
)

// storageCommands are the datastore, disk and volume commands (seed 003
// §3.5.1).
func storageCommands(ctx context.Context, stdout io.Writer, withOut func(...cli.Flag) []cli.Flag) []*cli.Command {
	show := func(c *cli.Context, method, path string, in any) error {
		v, err := get(ctx, c, method, path, in)
		if err != nil {
			return err
		}
		if v == nil { // 204
			return nil
		}
		return print(c, stdout, v)
	}
	// volumeAction posts in to an action route of the --id volume
	// (attach, detach, repair, fence) and shows the answer.
	volumeAction := func(c *cli.Context, action string, in any) error {
		return show(c, "POST", "/api/volumes/"+url.PathEscape(c.String("id"))+"/"+action, in)
	}
	showList := func(c *cli.Context, path string, q url.Values) error {
		v, err := get(ctx, c, "GET", path+"?"+q.Encode(), nil)
		if err != nil {
			return err
		}
		m, _ := v.(map[string]any)
		items, _ := m["items"].([]any)
		return print(c, stdout, items)
	}
	query := func(c *cli.Context, names ...string) url.Values {
		q := url.Values{}
		for _, n := range names {
			if s := c.String(n); s != "" {
				q.Set(n, s)
			}
		}
		return q
	}
	id := func(usage string) cli.Flag { return &cli.StringFlag{Name: "id", Required: true, Usage: usage} }
	disks := &cli.StringFlag{Name: "disks", Required: true, Usage: "The list of storage disk's IDs (comma-separated, see get_disks)."}
	return []*cli.Command{
		{
			Name: "get_disks", Usage: "List the nodes' disks.",
			Description: "List the disks of every node with their state (available, in_use, missing), datastore and use.\n\nExample:\n  osd get_disks --state=available --filter=id,node,size_mb",
			Flags: withOut(
				&cli.StringFlag{Name: "node", Usage: "Only the disks of this node."},
				&cli.StringFlag{Name: "datastore", Usage: "Only the disks of this datastore."},
				&cli.StringFlag{Name: "state", Usage: "Only disks in this state: available, in_use, missing."},
			),
			Action: func(c *cli.Context) error { return showList(c, "/api/disks", query(c, "node", "datastore", "state")) },
		},
		{
			Name: "create_datastore", Usage: "Create a new datastore.",
			Description: "Create a new datastore.\n\nExample:\n  osd create_datastore --name=test --disks=3584916917,3283879690 --replicas=1 --thick=1",
			Flags: withOut(
				&cli.StringFlag{Name: "name", Required: true, Usage: "The display name of the object."},
				&cli.StringFlag{Name: "disks", Required: true, Usage: "The list of storage disk's IDs."},
				&cli.Float64Flag{Name: "overcommit", Usage: "The overcommit value of the space that the volumes can take (1 = none)."},
				&cli.IntFlag{Name: "replicas", Usage: "The number of replicas we want for the volumes (1 or 2; 1 when not given)."},
				&cli.IntFlag{Name: "thick", Usage: "The attribute to make the datastore thick (1 = thick)."},
				&cli.BoolFlag{Name: "db_metadata", Usage: "Enable a vdisk for backing up the DBs."},
				&cli.StringFlag{Name: "trigger_repair", Usage: "How to trigger the repairs when the volumes are degraded, 'periodic' or 'manual'."},
				&cli.IntFlag{Name: "periodic_repair_sec", Usage: "When the trigger_repair is periodic, then we can write in seconds the periods it will check the volumes."},
				&cli.IntFlag{Name: "num_of_repairs", Usage: "The number of repairs it can do in a parallel (1 when not given)."},
				&cli.StringFlag{Name: "ft_unit", Usage: "Keep replicas in distinct units: node (default), blade, chassis or rack."},
			),
			Action: func(c *cli.Context) error {
				body := map[string]any{"name": c.String("name"), "disks": splitIDs(c.String("disks"))}
				for _, n := range []string{"replicas", "periodic_repair_sec", "num_of_repairs"} {
					if c.IsSet(n) {
						body[n] = c.Int(n)
					}
				}
				if c.IsSet("overcommit") {
					body["overcommit"] = c.Float64("overcommit")
				}
				if c.IsSet("thick") {
					switch t := c.Int("thick"); t {
					case 0, 1:
						body["thick"] = t == 1
					default:
						return fmt.Errorf("--thick %d: want 0 or 1", t)
					}
				}
				if c.Bool("db_metadata") {
					body["db_metadata"] = true
				}
				for _, n := range []string{"trigger_repair", "ft_unit"} {
					if c.IsSet(n) {
						body[n] = c.String(n)
					}
				}
				return show(c, "POST", "/api/datastores", body)
			},
		},
		{
			Name: "get_datastores", Usage: "List datastores with their options and capacity.",
			Description: "List datastores, or show one with --id.\n\nExample:\n  osd get_datastores --filter=id,name,usage.max_volume_mb",
			Flags:       withOut(&cli.StringFlag{Name: "id", Usage: "Only this datastore."}),
			Action: func(c *cli.Context) error {
				if id := c.String("id"); id != "" {
					return show(c, "GET", "/api/datastores/"+url.PathEscape(id), nil)
				}
				return showList(c, "/api/datastores", url.Values{})
			},
		},
		{
			Name: "delete_datastore", Usage: "Delete a datastore that has no volumes.",
			Description: "Delete a datastore; its disks become available.\n\nExample:\n  osd delete_datastore --id=1",
			Flags:       withOut(id("The datastore id.")),
			Action: func(c *cli.Context) error {
				return show(c, "DELETE", "/api/datastores/"+url.PathEscape(c.String("id")), nil)
			},
		},
		{
			Name: "add_disks", Usage: "Add available disks to a datastore.",
			Description: "Add disks to a datastore.\n\nExample:\n  osd add_disks --id=1 --disks=3584916917",
			Flags:       withOut(id("The datastore id."), disks),
			Action: func(c *cli.Context) error {
				return show(c, "POST", "/api/datastores/"+url.PathEscape(c.String("id"))+"/disks", map[string]any{"disks": splitIDs(c.String("disks"))})
			},
		},
		{
			Name: "remove_disks", Usage: "Remove disks that hold no replica from a datastore.",
			Description: "Remove disks from a datastore.\n\nExample:\n  osd remove_disks --id=1 --disks=3584916917",
			Flags:       withOut(id("The datastore id."), disks),
			Action: func(c *cli.Context) error {
				q := url.Values{"disks": {strings.Join(splitIDs(c.String("disks")), ",")}}
				return show(c, "DELETE", "/api/datastores/"+url.PathEscape(c.String("id"))+"/disks?"+q.Encode(), nil)
			},
		},
		{
			Name: "create_volume", Usage: "Create a volume in a datastore.",
			Description: "Create a volume; its replicas go to distinct nodes.\n\nExample:\n  osd create_volume --name=db --datastore=1 --size=10G",
			Flags: withOut(
				&cli.StringFlag{Name: "name", Required: true, Usage: "The display name of the object."},
				&cli.StringFlag{Name: "datastore", Required: true, Usage: "The datastore id."},
				&cli.StringFlag{Name: "size", Required: true, Usage: "The size: MiB, or with a suffix M, G or T (binary: 10G = 10240 MiB)."},
				&cli.BoolFlag{Name: "thick", Usage: "Preallocate (a thick datastore makes every volume thick)."},
				&cli.StringFlag{Name: "ft_unit", Usage: "Keep replicas in distinct units: node, blade, chassis or rack (default: the datastore's)."},
			),
			Action: func(c *cli.Context) error {
				mb, err := parseSizeMB(c.String("size"))
				if err != nil {
					return err
				}
				body := map[string]any{"name": c.String("name"), "datastore": c.String("datastore"), "size_mb": mb}
				if c.Bool("thick") {
					body["thick"] = true
				}
				if s := c.String("ft_unit"); s != "" {
					body["ft_unit"] = s
				}
				return show(c, "POST", "/api/volumes", body)
			},
		},
		{
			Name: "get_volumes", Usage: "List volumes with their replicas, epoch and in-sync set.",
			Description: "List volumes, or show one with --id.\n\nExample:\n  osd get_volumes --datastore=1 --filter=id,name,size_mb,in_sync",
			Flags: withOut(
				&cli.StringFlag{Name: "id", Usage: "Only this volume."},
				&cli.StringFlag{Name: "datastore", Usage: "Only the volumes of this datastore."},
				&cli.StringFlag{Name: "node", Usage: "Only volumes with a replica on this node."},
			),
			Action: func(c *cli.Context) error {
				if id := c.String("id"); id != "" {
					return show(c, "GET", "/api/volumes/"+url.PathEscape(id), nil)
				}
				return showList(c, "/api/volumes", query(c, "datastore", "node"))
			},
		},
		{
			Name: "resize_volume", Usage: "Grow a volume.",
			Description: "Grow a volume (volumes never shrink).\n\nExample:\n  osd resize_volume --id=3 --size=20G",
			Flags:       withOut(id("The volume id."), &cli.StringFlag{Name: "size", Required: true, Usage: "The new size: MiB, or with a suffix M, G or T."}),
			Action: func(c *cli.Context) error {
				mb, err := parseSizeMB(c.String("size"))
				if err != nil {
					return err
				}
				return show(c, "PATCH", "/api/volumes/"+url.PathEscape(c.String("id")), map[string]any{"size_mb": mb})
			},
		},
		{
			Name: "delete_volume", Usage: "Delete a volume.",
			Description: "Delete a volume and free its space.\n\nExample:\n  osd delete_volume --id=3",
			Flags:       withOut(id("The volume id.")),
			Action: func(c *cli.Context) error {
				return show(c, "DELETE", "/api/volumes/"+url.PathEscape(c.String("id")), nil)
			},
		},
		{
			Name: "attach_volume", Usage: "Attach a volume to the node that uses it (served there as NBD).",
			Description: "Attach a volume to a node: the node opens the replicated volume client and serves it as NBD on a unix socket.\n" +
				"A volume attached elsewhere needs --force, which fences the other node first.\n\n" +
				"Example:\n  osd attach_volume --id=3 --node=7a77f9af --socket=/run/vm1.sock",
			Flags: withOut(id("The volume id."),
				&cli.StringFlag{Name: "node", Required: true, Usage: "The node id."},
				&cli.StringFlag{Name: "socket", Usage: "The unix socket path on the node (default /run/mvstack/volumes/<id>.sock)."},
				&cli.BoolFlag{Name: "force", Usage: "Move the volume away from the node it is attached to, fencing that node."},
			),
			Action: func(c *cli.Context) error {
				body := map[string]any{"node": c.String("node")}
				if s := c.String("socket"); s != "" {
					body["socket"] = s
				}
				if c.Bool("force") {
					body["force"] = true
				}
				return volumeAction(c, "attach", body)
			},
		},
		{
			Name: "detach_volume", Usage: "Detach a volume from its node.",
			Description: "Detach a volume: its node closes it.\n\nExample:\n  osd detach_volume --id=3",
			Flags:       withOut(id("The volume id.")),
			Action: func(c *cli.Context) error {
				return volumeAction(c, "detach", map[string]any{})
			},
		},
		{
			Name: "volume_status", Usage: "Show a volume's attachment, epoch, in-sync set, live state and last repair.",
			Description: "Show where a volume is attached, its epoch and in-sync set, its node's live view (socket, dirty blocks, last resync) and the last repair.\n\n" +
				"Example:\n  osd volume_status --id=3 --filter=live.dirty,last_repair.blocks",
			Flags: withOut(id("The volume id.")),
			Action: func(c *cli.Context) error {
				v, err := get(ctx, c, "GET", "/api/volumes/"+url.PathEscape(c.String("id")), nil)
				if err != nil {
					return err
				}
				m, _ := v.(map[string]any)
				out := map[string]any{}
				for _, k := range []string{"id", "name", "attached_to", "epoch", "in_sync", "replicas", "live", "live_error", "last_repair"} {
					if x, ok := m[k]; ok {
						out[k] = x
					}
				}
				return print(c, stdout, out)
			},
		},
		{
			Name: "repair_volume", Usage: "Repair a volume's stale replicas now.",
			Description: "Start the repair of a volume's replicas that are out of sync (at most the datastore's num_of_repairs at once; the rest are queued).\n\n" +
				"Example:\n  osd repair_volume --id=3",
			Flags: withOut(id("The volume id.")),
			Action: func(c *cli.Context) error {
				return volumeAction(c, "repair", map[string]any{})
			},
		},
		{
			Name: "fence_volume", Usage: "Fence a node off a volume.",
			Description: "Raise the volume's epoch and reserve its replicas so that the node can no longer write; its attachment is cleared.\n\n" +
				"Example:\n  osd fence_volume --id=3 --node=7a77f9af",
			Flags: withOut(id("The volume id."), &cli.StringFlag{Name: "node", Required: true, Usage: "The node id to fence off."}),
			Action: func(c *cli.Context) error {
				return volumeAction(c, "fence", map[string]any{"node": c.String("node")})
			},
		},
	}
}

// splitIDs splits a comma-separated list, dropping blanks.
func splitIDs(s string) []string {
	out := []string{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseSizeMB reads "1024", "512M", "10G", "2T" (binary units) as MiB.
func parseSizeMB(s string) (uint64, error) {
	num := strings.TrimSpace(s)
	mult := uint64(1)
	upper := strings.ToUpper(num)
	for _, u := range []struct {
		suffix string
		mult   uint64
	}{{"TIB", 1 << 20}, {"TB", 1 << 20}, {"T", 1 << 20}, {"GIB", 1 << 10}, {"GB", 1 << 10}, {"G", 1 << 10}, {"MIB", 1}, {"MB", 1}, {"M", 1}} {
		if strings.HasSuffix(upper, u.suffix) {
			num, mult = strings.TrimSpace(num[:len(num)-len(u.suffix)]), u.mult
			break
		}
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || n == 0 || n > (1<<63)/mult {
		return 0, fmt.Errorf("size %q: want a positive whole number of MiB, or with a suffix M, G or T (e.g. 10G)", s)
	}
	return n * mult, nil
}
