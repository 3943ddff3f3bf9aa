package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The controller's addresses inside the ctl namespace.
const (
	raftAddr = "127.0.0.1:7000"
	httpAddr = "127.0.0.1:8080"
)

// volumeMB is the demo volume's size.
const volumeMB = 256

// diskView and volumeView are the parts of osd's --json answers the
// walkthrough reads.
type diskView struct {
	ID, Node, State string
}

type volumeView struct {
	ID       string   `json:"id"`
	Epoch    uint64   `json:"epoch"`
	InSync   []string `json:"in_sync"`
	Replicas []struct {
		Node string `json:"node"`
	} `json:"replicas"`
	LastRepair *struct {
		Node   string `json:"node"`
		Full   bool   `json:"full"`
		Dirty  int    `json:"dirty"`
		Blocks int    `json:"blocks"`
		Bytes  int64  `json:"bytes"`
	} `json:"last_repair"`
}

// storage is the second part: the controller, a replicated volume, a
// replica's node killed under writes and repaired.
func (d *walk) storage() error {
	if d.nodes < 3 {
		d.step("skipping the controller and storage part: a 2-replica volume used from a third node needs --nodes 3 or more")
		return nil
	}
	l, ctl, ctx := d.l, d.ctl, d.ctx

	d.step("starting the controller in %s: a one-replica raft cluster, REST on %s, watching the nodes on eth0", ctl.name, httpAddr)
	tokFile := filepath.Join(d.dir, "admin.token")
	fmt.Fprintf(d.w, "$ mvcontroller token new > %s\n", tokFile)
	out, err := l.run(ctx, ctl, nil, d.mvcontroller, "token", "new")
	if err != nil {
		return d.failed(fmt.Errorf("mvcontroller token new: %v: %s", err, out))
	}
	token := strings.TrimSpace(out)
	if err := os.WriteFile(tokFile, []byte(token+"\n"), 0o600); err != nil {
		return err
	}
	args := []string{"serve", "--id", "c1", "--raft-addr", raftAddr, "--http-addr", httpAddr,
		"--bootstrap", "c1=" + raftAddr + "/" + httpAddr, "--data-dir", filepath.Join(d.dir, "c1"),
		"--admin-token-file", tokFile, "--iface", "eth0", "--key", d.key}
	fmt.Fprintf(d.w, "$ mvcontroller %s &\n", strings.Join(args, " "))
	d.controller, err = l.start(ctl, d.mvcontroller, args...)
	if err != nil {
		return err
	}
	if err := d.controller.waitOutput(ctx, "nodes on eth0", time.Minute); err != nil {
		return d.failed(fmt.Errorf("the controller did not start: %w", err), d.controller)
	}
	fmt.Fprint(d.w, indent("the leader: "+lastLine(d.controller.out.String(), "nodes on eth0")))

	d.osdEnv = []string{"OSD_URL=http://" + httpAddr, "OSD_TOKEN=" + token}
	d.step("the nodes heartbeat to it (mvnode --controller %s) with their drive files; osd is its command line", ctl.mac)
	fmt.Fprintf(d.w, "$ export OSD_URL=http://%s OSD_TOKEN=$(cat %s)   # osd runs in %s\n", httpAddr, tokFile, ctl.name)
	var disks []diskView
	if err := d.poll(time.Minute, "every node registered with its drive", func() (bool, error) {
		err := d.osdJSON(&disks, "get_disks")
		return len(disks) >= d.nodes, err
	}); err != nil {
		return d.failed(err, append([]*proc{d.controller}, d.nodeProcs...)...)
	}
	if _, err := d.show("get_nodes", "--filter=id,mac,state,health,inventory.disks.0.name"); err != nil {
		return d.failed(err, d.controller)
	}
	if _, err := d.show("get_disks", "--filter=id,node,name,size_mb,state"); err != nil {
		return d.failed(err, d.controller)
	}

	var ids []string
	for _, dk := range disks {
		ids = append(ids, dk.ID)
	}
	d.step("a datastore of the %d drives that keeps 2 replicas of each volume, on distinct nodes", len(ids))
	out, err = d.show("create_datastore", "--name=demo", "--disks="+strings.Join(ids, ","), "--replicas=2", "--filter=id,name,disks,replicas,trigger_repair,usage.size_mb")
	if err != nil {
		return d.failed(fmt.Errorf("create_datastore: %w", err), d.controller)
	}
	ds := field(out, "id")

	d.step("a %d MiB volume in it: the controller places its 2 replicas", volumeMB)
	out, err = d.show("create_volume", "--name=vol1", "--datastore="+ds, fmt.Sprintf("--size=%dM", volumeMB), "--filter=id,name,size_mb,epoch,in_sync,replicas")
	if err != nil {
		return d.failed(fmt.Errorf("create_volume: %w", err), d.controller)
	}
	vid := field(out, "id")
	vol, err := d.volume(vid)
	if err != nil {
		return d.failed(err, d.controller)
	}
	var holders []string
	for _, r := range vol.Replicas {
		holders = append(holders, r.Node)
	}
	user, victim, survivor := -1, -1, -1
	for i, h := range d.rack {
		switch {
		case !slices.Contains(holders, nodeID(h)):
			if user < 0 {
				user = i
			}
		case survivor < 0:
			survivor = i
		default:
			victim = i
		}
	}
	if user < 0 || survivor < 0 || victim < 0 {
		return d.failed(fmt.Errorf("volume %s has replicas on %v: want 2 on distinct nodes, and a node without one", vid, holders), d.controller)
	}

	d.step("attaching it to node %s, which holds no replica: it reaches both over AoE and serves the volume as NBD", nodeID(d.rack[user]))
	var attached string
	// The controller answers an error while the replicas' nodes set up
	// their exports; the attach is retried until it succeeds.
	err = d.poll(time.Minute, "volume "+vid+" attached", func() (bool, error) {
		out, err := d.l.run(ctx, ctl, d.osdEnv, d.osd, "attach_volume", "--id="+vid, "--node="+nodeID(d.rack[user]))
		attached = out
		if err != nil {
			return false, fmt.Errorf("%v: %s", err, strings.TrimSpace(out))
		}
		return true, nil
	})
	fmt.Fprintf(d.w, "$ osd attach_volume --id=%s --node=%s\n%s", vid, nodeID(d.rack[user]), indent(attached))
	if err != nil {
		return d.failed(err, d.controller, d.nodeProcs[user])
	}
	sock := field(attached, "socket")
	if sock == "" {
		return d.failed(fmt.Errorf("osd attach_volume named no socket"), d.controller)
	}

	qemuIO, err := exec.LookPath("qemu-io")
	if err != nil {
		d.step("qemu-io is not installed (apt-get install qemu-utils): skipping the writes through NBD, a replica's failure and its repair")
		return nil
	}
	image := "nbd+unix:///?socket=" + sock
	qio := func(cmds ...string) (string, error) {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		args := []string{"-f", "raw", image}
		shown := []string{"qemu-io", "-f", "raw", "'" + image + "'"}
		for _, c := range cmds {
			args = append(args, "-c", c)
			shown = append(shown, "-c", "'"+c+"'")
		}
		fmt.Fprintf(d.w, "$ %s\n", strings.Join(shown, " "))
		qctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(qctx, qemuIO, args...).CombinedOutput()
		fmt.Fprint(d.w, indent(string(out)))
		if err == nil && strings.Contains(string(out), "error") { // qemu-io exits 0 on some failed commands
			err = errors.New("qemu-io reported an error")
		}
		return string(out), err
	}
	d.step("writing 64 MiB of 0x5a through NBD: every write goes to both replicas")
	if _, err := qio("write -P 0x5a 0 64M"); err != nil {
		return d.failed(fmt.Errorf("writing through NBD: %w", err), d.nodeProcs[user], d.controller)
	}

	vp := d.nodeProcs[victim]
	d.step("node %s, which holds a replica, dies: kill -9 its mvnode", nodeID(d.rack[victim]))
	fmt.Fprintf(d.w, "$ kill -9 %d   # mvnode on %s\n", vp.cmd.Process.Pid, d.rack[victim].name)
	vp.kill()

	d.step("writing 32 MiB of 0xa5 still succeeds: the writes wait (--volume-io-timeout 5s) until the controller drops the dead replica, raises the epoch and marks the node failed")
	if _, err := qio("write -P 0xa5 0 32M"); err != nil {
		return d.failed(fmt.Errorf("writing with a replica's node dead: %w", err), d.nodeProcs[user], d.controller)
	}
	if err := d.poll(30*time.Second, "the dead replica out of the in-sync set", func() (bool, error) {
		v, err := d.volume(vid)
		return err == nil && slices.Equal(v.InSync, []string{nodeID(d.rack[survivor])}), err
	}); err != nil {
		return d.failed(err, d.controller, d.nodeProcs[user])
	}
	if _, err := d.show("get_volumes", "--id="+vid, "--filter=id,epoch,in_sync,attached_to"); err != nil {
		return d.failed(err, d.controller)
	}
	// The controller's liveness monitoring marks the silent node too.
	if err := d.poll(30*time.Second, "node "+nodeID(d.rack[victim])+" marked failed", func() (bool, error) {
		var n struct{ State string }
		err := d.osdJSON(&n, "get_node", "--id="+nodeID(d.rack[victim]))
		return err == nil && n.State == "error", err
	}); err != nil {
		return d.failed(err, d.controller)
	}
	if _, err := d.show("get_node", "--id="+nodeID(d.rack[victim]), "--filter=id,state,health,reason"); err != nil {
		return d.failed(err, d.controller)
	}

	d.step("the node comes back with the same flags; repairing copies to its stale replica only the blocks written while it was away")
	fmt.Fprintf(d.w, "$ mvnode %s &   # in %s\n", strings.Join(d.nodeArgs(victim), " "), d.rack[victim].name)
	if err := d.startNode(victim); err != nil {
		return err
	}
	if err := d.nodeProcs[victim].waitOutput(ctx, "answering on", time.Minute); err != nil {
		return d.failed(err, d.nodeProcs[victim])
	}
	// The repair of a node the controller still counts as failed waits
	// for it; wait for its heartbeats, so the repair starts at once.
	if err := d.poll(time.Minute, "node "+nodeID(d.rack[victim])+" enabled again", func() (bool, error) {
		var n struct{ State string }
		err := d.osdJSON(&n, "get_node", "--id="+nodeID(d.rack[victim]))
		return err == nil && n.State == "enabled", err
	}); err != nil {
		return d.failed(err, d.controller, d.nodeProcs[victim])
	}
	if _, err := d.show("repair_volume", "--id="+vid); err != nil {
		return d.failed(fmt.Errorf("repair_volume: %w", err), d.controller, d.nodeProcs[victim])
	}
	if err := d.poll(time.Minute, "both replicas back in sync after the repair", func() (bool, error) {
		vol, err = d.volume(vid)
		return err == nil && len(vol.InSync) == 2 && vol.LastRepair != nil, err
	}); err != nil {
		return d.failed(err, d.controller, d.nodeProcs[victim], d.nodeProcs[survivor])
	}
	if _, err := d.show("volume_status", "--id="+vid, "--filter=epoch,in_sync,last_repair.node,last_repair.full,last_repair.dirty,last_repair.blocks,last_repair.bytes"); err != nil {
		return d.failed(err, d.controller)
	}

	if r := vol.LastRepair; !r.Full {
		fmt.Fprintf(d.w, "    # %d blocks copied (%d MiB) for the %d dirty ones: not the whole %d MiB volume\n", r.Blocks, r.Bytes>>20, r.Dirty, volumeMB)
	}

	d.step("reading back through NBD: the 0xa5 written while a replica was dead, then the 0x5a after it")
	if _, err := qio("read -P 0xa5 0 32M", "read -P 0x5a 32M 32M"); err != nil {
		return d.failed(fmt.Errorf("reading back through NBD: %w", err), d.nodeProcs[user], d.controller)
	}
	return ctx.Err()
}

// show runs osd in the ctl namespace, echoing it and its answer.
func (d *walk) show(args ...string) (string, error) {
	if err := d.ctx.Err(); err != nil {
		return "", err
	}
	fmt.Fprintf(d.w, "$ osd %s\n", strings.Join(args, " "))
	out, err := d.l.run(d.ctx, d.ctl, d.osdEnv, d.osd, args...)
	fmt.Fprint(d.w, indent(out))
	if err != nil {
		return out, fmt.Errorf("osd %s: %w", args[0], err)
	}
	return out, nil
}

// osdJSON runs osd quietly with --json and decodes its answer into v.
func (d *walk) osdJSON(v any, args ...string) error {
	out, err := d.l.run(d.ctx, d.ctl, d.osdEnv, d.osd, append(args, "--json")...)
	if err != nil {
		return fmt.Errorf("osd %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(out))
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("osd %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (d *walk) volume(id string) (volumeView, error) {
	var v volumeView
	err := d.osdJSON(&v, "get_volumes", "--id="+id)
	return v, err
}

// poll calls cond until it holds, the timeout passes (an error naming what
// was awaited and cond's last error) or the demo is interrupted.
func (d *walk) poll(timeout time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if d.ctx.Err() != nil {
			return d.ctx.Err()
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("waited %v for %s: %w", timeout, what, err)
			}
			return fmt.Errorf("waited %v for %s", timeout, what)
		}
		select {
		case <-d.ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// field is the value of the first key=value line of osd's output.
func field(out, key string) string {
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+"="); ok {
			return v
		}
	}
	return ""
}

// lastLine is the last line of a log holding s.
func lastLine(log, s string) string {
	lines := strings.Split(log, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], s) {
			return lines[i]
		}
	}
	return ""
}
