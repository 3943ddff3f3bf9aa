package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mvstack/mvstack/proto"
)

// The node-facing side's flags fail before anything starts, naming the bad
// input.
func TestControllerNodeFlagsNameTheBadInput(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "cluster.key")
	k, err := proto.NewKey(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := proto.WriteKeyFile(key, k); err != nil {
		t.Fatal(err)
	}
	serve := []string{"mvcontroller", "serve", "--id", "c1", "--data-dir", filepath.Join(dir, "data"),
		"--raft-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}
	tests := []struct {
		desc string
		args []string
		env  string
		want []string
	}{
		{"missing key file", []string{"--iface", "lo", "--key", filepath.Join(dir, "nope.key")}, "", []string{"--key", "nope.key"}},
		{"key file from MVSTACK_KEY", []string{"--iface", "lo"}, filepath.Join(dir, "env.key"), []string{"--key", "env.key"}},
		{"no such interface", []string{"--iface", "nosuch0", "--key", key}, "", []string{"--iface nosuch0"}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Setenv("MVSTACK_KEY", tt.env)
			var out, errb bytes.Buffer
			err := run(t.Context(), append(append([]string{}, serve...), tt.args...), &out, &errb)
			if err == nil {
				t.Fatalf("serve %v: no error", tt.args)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("serve %v: error %q does not name %q", tt.args, err, w)
				}
			}
		})
	}
}
