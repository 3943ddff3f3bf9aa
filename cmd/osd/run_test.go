package main

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mvstack/mvstack/controller/replica"
	"github.com/mvstack/mvstack/controller/replicatest"
	"github.com/mvstack/mvstack/controller/rest"
	"github.com/mvstack/mvstack/controller/state"
	"github.com/mvstack/mvstack/proto"
)

// controller starts a one-replica controller with two nodes and returns its
// URL and a token.
func controller(t *testing.T) (string, string) { t.Helper(); return controllerWith(t, nil) }

// controllerWith is controller whose API has the volumes side vols makes
// (nil: none).
func controllerWith(t *testing.T, vols func(*replica.Replica) rest.Volumes) (string, string) {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	c := replicatest.New(t, []string{srv.Listener.Addr().String()})
	r := c.Replicas[c.Leader(t)]
	rcfg := rest.Config{Store: r, Members: r}
	if vols != nil {
		rcfg.Volumes = vols(r)
	}
	h, err := rest.New(rcfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = h
	srv.Start()
	t.Cleanup(srv.Close)
	tok, id, hash := rest.NewToken()
	cmds := []state.Command{
		state.CreateToken{At: time.Now().UTC(), ID: id, Name: "t", Hash: hash},
		state.RegisterNode{At: time.Now().UTC(), MAC: proto.MAC{0x0c, 0xc4, 0x7a, 0x77, 0xf9, 0xaf}, Inventory: state.Inventory{Hostname: "mv1",
			NUMA: []state.NUMA{{ID: 0, Cores: []uint32{0, 1, 2}}}, Location: state.Location{Rack: "r1"}}},
		state.RegisterNode{At: time.Now().UTC(), MAC: proto.MAC{0x0c, 0xc4, 0, 0, 0, 2}, Inventory: state.Inventory{Hostname: "mv2"}},
	}
	for _, cmd := range cmds {
		if _, err := r.Apply(t.Context(), cmd); err != nil {
			t.Fatal(err)
		}
	}
	return srv.URL, tok
}

func osd(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var out, errb bytes.Buffer
	err := run(t.Context(), append([]string{"osd"}, args...), &out, &errb)
	return out.String(), err
}

func TestGetNodesKeyValueFilterJSON(t *testing.T) {
	u, tok := controller(t)
	t.Setenv("HOME", t.TempDir())
	out, err := osd(t, nil, "--url", u, "--token", tok, "get_nodes", "--filter", "id,state,inventory.location")
	if err != nil {
		t.Fatal(err)
	}
	// Nodes come in id order.
	want := "id=00000002\ninventory.location.blade=\ninventory.location.chassis=\ninventory.location.rack=\nstate=enabled\n\n" +
		"id=7a77f9af\ninventory.location.blade=\ninventory.location.chassis=\ninventory.location.rack=r1\nstate=enabled\n"
	if out != want {
		t.Errorf("get_nodes --filter:\n%s\nwant:\n%s", out, want)
	}
	out, err = osd(t, nil, "--url", u, "--token", tok, "get_node", "--id", "7a77f9af", "--filter", "inventory.numa")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "inventory.numa.0.cores=0,1,2\n") {
		t.Errorf("lists print as ids=1,2,3: got\n%s", out)
	}
	out, err = osd(t, nil, "--url", u, "--token", tok, "get_node", "--id", "7a77f9af", "--json", "--filter", "id,mac")
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil || v["mac"] != "0c:c4:7a:77:f9:af" || len(v) != 2 {
		t.Errorf("--json --filter id,mac: %v %s", err, out)
	}
}

func TestSetNodeStateAndCluster(t *testing.T) {
	u, tok := controller(t)
	t.Setenv("HOME", t.TempDir())
	env := map[string]string{"OSD_URL": u, "OSD_TOKEN": tok}
	out, err := osd(t, env, "set_node_state", "--id", "7a77f9af", "--state", "disabled")
	if err != nil || !strings.Contains(out, "state=disabled\n") || !strings.Contains(out, "schedulable=false\n") {
		t.Fatalf("set_node_state: %v\n%s", err, out)
	}
	_, err = osd(t, env, "set_node_state", "--id", "7a77f9af", "--state", "error")
	if err == nil || !strings.Contains(err.Error(), "422") || !strings.Contains(err.Error(), "field state") {
		t.Errorf("set_node_state --state error: %v, want a 422 naming the field", err)
	}
	out, err = osd(t, env, "get_cluster", "--filter", "leader,term")
	if err != nil || !strings.HasPrefix(out, "leader=c1\nterm=") {
		t.Errorf("get_cluster: %v\n%s", err, out)
	}
	if _, err := osd(t, env, "get_node"); err == nil || !strings.Contains(err.Error(), "id") {
		t.Errorf("get_node without --id: %v, want an error naming id", err)
	}
}

func TestSettingsFromConfigFileAndBadToken(t *testing.T) {
	u, tok := controller(t)
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("OSD_URL", "")
	t.Setenv("OSD_TOKEN", "")
	if err := os.MkdirAll(filepath.Join(home, ".config", "osd"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".config", "osd", "config"), []byte("# osd\nurl="+u+"\ntoken="+tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := osd(t, nil, "get_nodes", "--filter", "id")
	if err != nil || out != "id=00000002\n\nid=7a77f9af\n" {
		t.Errorf("settings from the config file: %v\n%s", err, out)
	}
	// A flag wins over the config file.
	if _, err := osd(t, nil, "--token", "mvs_0_bad", "get_nodes"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("bad token: %v, want 401", err)
	}
	bad := filepath.Join(home, "bad")
	os.WriteFile(bad, []byte("colour=red\n"), 0o600)
	if _, err := osd(t, nil, "--config", bad, "get_nodes"); err == nil || !strings.Contains(err.Error(), "colour") {
		t.Errorf("bad config: %v, want an error naming the key", err)
	}
}
