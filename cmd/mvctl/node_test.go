package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mvstack/mvstack/node/domain"
	"github.com/mvstack/mvstack/node/inventory"
	"github.com/mvstack/mvstack/node/nodeclient"
	"github.com/mvstack/mvstack/proto"
)

func TestParseVNodeAndDisk(t *testing.T) {
	v, err := parseVNode("1:4G:4-7")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(domain.VNode{PNode: 1, Memory: 4 << 30, VCPUs: []int{4, 5, 6, 7}}, v); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := parseVNode("1:4G"); err == nil || !strings.Contains(err.Error(), "PNODE:MEMORY:VCPUS") {
		t.Errorf("short vnode: %v", err)
	}
	d, err := parseDisk("nbd:/run/dn1.sock,ro")
	if err != nil || d.NBD != "/run/dn1.sock" || !d.ReadOnly {
		t.Errorf("nbd disk: %+v %v", d, err)
	}
	if d, _ := parseDisk("/var/lib/dn1.img"); d.File != "/var/lib/dn1.img" {
		t.Errorf("file disk: %+v", d)
	}
}

func TestTablesAnOperatorReads(t *testing.T) {
	var b bytes.Buffer
	writeNodes(&b, []nodeclient.Found{{From: proto.MAC{0x0c, 0xc4, 0x7a, 0x77, 0xf9, 0xaf}, Summary: nodeclient.Summary{
		NodeID: "7a77f9af", Hostname: "sim-7a77f9af", Hypervisor: "sim", Location: inventory.Location{Rack: "r1", Blade: "b2"},
		PCPUs: 64, Memory: 256 << 30, Domains: 3, Running: 2}}})
	want := "NODE      MAC                HOSTNAME      HYPERVISOR  RACK/CHASSIS/BLADE  PCPUS  MEMORY   DOMAINS\n" +
		"7a77f9af  0c:c4:7a:77:f9:af  sim-7a77f9af  sim         r1/-/b2             64     256 GiB  3 (2 running)\n"
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("nodes (-want +got):\n%s", diff)
	}
	b.Reset()
	writeVCPUs(&b, "dn5", 5, []domain.VCPUInfo{{VCPU: 0, CPU: 3, State: domain.StateRunning, Time: 1500 * time.Millisecond, Affinity: []int{3}, ThreadID: 4711},
		{VCPU: 1, CPU: -1, State: domain.StatePaused, Affinity: []int{0, 1, 2, 3}}})
	want = "Name  ID  VCPU  CPU  State    Time(s)  Affinity  Thread\n" +
		"dn5   5   0     3    running  1.5      3         4711\n" +
		"dn5   5   1     -    paused   0.0      0-3       -\n"
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("vcpus (-want +got):\n%s", diff)
	}
}
