package netns

import (
	"os"
	"testing"
)

func TestParseOwner(t *testing.T) {
	for _, tc := range []struct {
		desc string
		name string
		want owner
		ok   bool
	}{
		{desc: "lab host", name: "mvt-123-4567-1-testx-h0", want: owner{pid: 123, start: 4567}, ok: true},
		{desc: "build dir", name: "mvt-9-8-bin-1234", want: owner{pid: 9, start: 8}, ok: true},
		{desc: "someone else's namespace", name: "mvlab-h0"},
		{desc: "no start time", name: "mvt-123-h0"},
		{desc: "pid zero", name: "mvt-0-5-sw"},
		{desc: "empty", name: ""},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			got, ok := parseOwner(tc.name)
			if ok != tc.ok || got != tc.want {
				t.Errorf("parseOwner(%q) = %+v, %v; want %+v, %v", tc.name, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestOwnerAlive(t *testing.T) {
	me := self()
	if me.pid != os.Getpid() || me.start == 0 {
		t.Fatalf("self() = %+v, want this pid and a start time", me)
	}
	if !me.alive() {
		t.Error("this process is reported dead")
	}
	if (owner{pid: me.pid, start: me.start + 1}).alive() {
		t.Error("a process with this pid but another start time is reported alive: a reused pid would protect leftovers")
	}
	parsed, ok := parseOwner(me.String() + "-1-x-sw")
	if !ok || parsed != me {
		t.Errorf("parseOwner(own name) = %+v, %v; want %+v", parsed, ok, me)
	}
}

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{
		"TestLab/5hosts-mtu9000": "testlab.5hosts.mtu90",
		"":                       "",
		"--x--":                  "x",
		"ÄÖ":                     "",
	} {
		if got := sanitize(in, 20); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig: %v", err)
	}
	for _, c := range []Config{{Hosts: 0}, {Hosts: MaxHosts + 1}, {Hosts: 1, MTU: 67}, {Hosts: 1, MTU: 65536}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v validated", c)
		}
	}
}
