package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBadInputIsNamed(t *testing.T) {
	dir := t.TempDir()
	unknown := filepath.Join(dir, "unknown.json")
	os.WriteFile(unknown, []byte(`{"iface": "eth0", "drivr": "sim"}`), 0o600)
	badDriver := filepath.Join(dir, "driver.json")
	os.WriteFile(badDriver, []byte(`{"iface": "eth0", "driver": "xen", "key_file": "/nonexistent"}`), 0o600)
	for _, tc := range []struct {
		desc string
		args []string
		want string
	}{
		{"unknown field", []string{"--config", unknown}, `unknown field "drivr"`},
		{"driver", []string{"--config", badDriver}, `Config.Driver "xen": want sim or qemu`},
		{"sim hardware", []string{"--iface", "eth0", "--sim-hardware", "2x16"}, "--sim-hardware"},
		{"no iface", []string{"--sim-hardware", "1x2x1,4G,1"}, "Config.Iface is empty"},
		{"interval", []string{"--iface", "eth0", "--heartbeat-interval", "1ms"}, "HeartbeatInterval 1ms"},
		{"arguments", []string{"extra"}, `unexpected arguments ["extra"]`},
		{"missing file", []string{"--config", filepath.Join(dir, "nope.json")}, "nope.json"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(t.Context(), append([]string{"mvnode"}, tc.args...), &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("run %q: %v, want an error saying %q", tc.args, err, tc.want)
			}
		})
	}
}

func TestHelpNamesEveryFlag(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), []string{"mvnode", "--help"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"--config", "--iface", "--key", "--driver", "--sim-hardware", "--rack", "--chassis", "--blade",
		"--metrics-addr", "--state-dir", "--controller"} {
		if !strings.Contains(out.String(), f) {
			t.Errorf("--help lacks %s", f)
		}
	}
}
