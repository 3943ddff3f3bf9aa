package agent_test

import (
	"strings"
	"testing"

	"github.com/mvstack/mvstack/node/agent"
)

func TestParseExportNamesTheBadPart(t *testing.T) {
	got, err := agent.ParseExport("7.1:/srv/disk1.img,ro,wb")
	if err != nil || got != (agent.Export{Shelf: 7, Slot: 1, Path: "/srv/disk1.img", ReadOnly: true, WriteBack: true}) {
		t.Fatalf("ParseExport = %+v, %v", got, err)
	}
	for _, tc := range []struct{ in, want string }{
		{"/srv/disk1.img", "SHELF.SLOT:PATH"},
		{"7:/srv/d", "shelf.slot"},
		{"65535.1:/srv/d", "shelf.slot"},
		{"7.255:/srv/d", "shelf.slot"},
		{"7.1:/srv/d,rw", `unknown option "rw"`},
	} {
		if _, err := agent.ParseExport(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseExport(%q) = %v, want an error mentioning %q", tc.in, err, tc.want)
		}
	}
	cfg := agent.DefaultConfig()
	cfg.Iface = "eth0"
	cfg.Exports = []agent.Export{{Shelf: 1, Slot: 1, Path: "/a"}, {Shelf: 1, Slot: 1, Path: "/b"}}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "1.1 is exported twice") {
		t.Errorf("two exports at 1.1: %v", err)
	}
}
