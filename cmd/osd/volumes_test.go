package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mvstack/mvstack/controller/client"
	"github.com/mvstack/mvstack/controller/leader"
	"github.com/mvstack/mvstack/controller/nodetest"
	"github.com/mvstack/mvstack/controller/replica"
	"github.com/mvstack/mvstack/controller/replicatest"
	"github.com/mvstack/mvstack/controller/rest"
	"github.com/mvstack/mvstack/controller/state"
	"github.com/mvstack/mvstack/controller/volumes"
	"github.com/mvstack/mvstack/proto"
)

// volumesController is storageController with the storage loop running
// over simulated nodes.
func volumesController(t *testing.T) (map[string]string, []string, *nodetest.Directory) {
	dir := nodetest.New()
	dir.Add(proto.MAC{0x0c, 0xc4, 0x7a, 0x77, 0xf9, 0xaf}, state.Inventory{})
	dir.Add(proto.MAC{0x0c, 0xc4, 0, 0, 0, 2}, state.Inventory{})
	env, d := storageControllerWith(t, func(r *replica.Replica) rest.Volumes {
		cfg := volumes.DefaultConfig()
		cfg.Store, cfg.Nodes, cfg.Self = r, dir, proto.MAC{2, 0, 0, 0, 0, 0xc1}
		m, err := volumes.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); leader.Run(ctx, r, "volumes", nil, m.Run) }()
		t.Cleanup(func() { cancel(); <-done })
		return m
	})
	return env, d, dir
}

func TestVolumeCommands(t *testing.T) {
	env, d, dir := volumesController(t)
	if _, err := osd(t, env, "create_datastore", "--name=ds", "--disks="+d[0]+","+d[1], "--replicas=2"); err != nil {
		t.Fatal(err)
	}
	if _, err := osd(t, env, "create_volume", "--name=v", "--datastore=1", "--size=100"); err != nil {
		t.Fatal(err)
	}
	var out string
	replicatest.WaitFor(t, "the storage loop to lead", func() bool {
		var err error
		out, err = osd(t, env, "attach_volume", "--id=1", "--node=7a77f9af", "--socket=/tmp/v1.sock", "--filter", "attached,node,socket")
		var ce *client.Error
		if errors.As(err, &ce) && ce.Status == 503 {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		return true
	})
	if want := "attached=true\nnode=7a77f9af\nsocket=/tmp/v1.sock\n"; out != want {
		t.Errorf("attach_volume:\n%s\nwant:\n%s", out, want)
	}
	if _, err := osd(t, env, "attach_volume", "--id=1", "--node=00000002"); err == nil || !strings.Contains(err.Error(), "detach it first") {
		t.Errorf("attach_volume elsewhere: %v, want detach first", err)
	}
	out, err := osd(t, env, "volume_status", "--id=1", "--filter", "attached_to,epoch,live.socket")
	if want := "attached_to=7a77f9af\nepoch=1\nlive.socket=/tmp/v1.sock\n"; err != nil || out != want {
		t.Errorf("volume_status: %v\n%s\nwant:\n%s", err, out, want)
	}
	if _, err := osd(t, env, "repair_volume", "--id=1"); err == nil || !strings.Contains(err.Error(), "every replica is in sync") {
		t.Errorf("repair_volume of an in-sync volume: %v", err)
	}
	out, err = osd(t, env, "fence_volume", "--id=1", "--node=7a77f9af", "--filter", "allow,detached,epoch,fenced")
	if want := "allow=02:00:00:00:00:c1\ndetached=true\nepoch=2\nfenced=00000002,7a77f9af\n"; err != nil || out != want {
		t.Errorf("fence_volume: %v\n%s\nwant:\n%s", err, out, want)
	}
	var fenced int
	for _, c := range dir.Calls() {
		if c.Method == nodetest.Fence && c.Epoch == 2 {
			fenced++
		}
	}
	if fenced != 2 {
		t.Errorf("%d fence calls at epoch 2, want one per replica", fenced)
	}
	out, err = osd(t, env, "volume_status", "--id=1", "--filter", "attached_to,epoch")
	if want := "attached_to=\nepoch=2\n"; err != nil || out != want {
		t.Errorf("volume_status after the fence: %v\n%s\nwant:\n%s", err, out, want)
	}
	if _, err := osd(t, env, "detach_volume", "--id=1"); err == nil || !strings.Contains(err.Error(), "not attached") {
		t.Errorf("detach_volume of a detached volume: %v", err)
	}
	if _, err := osd(t, env, "attach_volume", "--id=1", "--node=00000002"); err != nil {
		t.Fatal(err)
	}
	out, err = osd(t, env, "detach_volume", "--id=1", "--filter", "node")
	if err != nil || out != "node=00000002\n" {
		t.Errorf("detach_volume: %v\n%s", err, out)
	}
}
