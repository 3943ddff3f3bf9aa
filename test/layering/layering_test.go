package layering

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/mvstack/mvstack"

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

// listDeps runs 'go list -deps -json' over the whole module and returns
// each of our packages with its transitive dependencies.
func listDeps(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	cmd.Dir = "../.."
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(out)
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	return pkgs
}

func within(path, top string) bool {
	return path == module+"/"+top || strings.HasPrefix(path, module+"/"+top+"/")
}

func TestImportsFollowTheLayers(t *testing.T) {
	rules := []struct {
		from      string
		forbidden []string
		why       string
	}{
		{"proto", []string{"aoe", "node", "controller", "statsd", "perfc", "cmd", "test"}, "proto is the ground floor"},
		{"aoe", []string{"node", "controller", "cmd"}, "aoe is a library over proto"},
		{"perfc", []string{"node", "controller", "cmd"}, "perfc is a library over proto"},
		{"statsd", []string{"node", "controller", "cmd"}, "statsd is a library over proto"},
		{"node", []string{"controller", "cmd"}, "the node obeys messages, not the controller's code"},
		{"controller", []string{"cmd"}, "commands are leaves"},
	}
	for _, p := range listDeps(t) {
		for _, r := range rules {
			if !within(p.ImportPath, r.from) {
				continue
			}
			for _, d := range p.Deps {
				for _, f := range r.forbidden {
					if within(d, f) {
						t.Errorf("%s imports %s: %s", p.ImportPath, d, r.why)
					}
				}
			}
		}
	}
}

// TestNoCommandLinksOurTestCode: none of our packages that a command links
// imports testing, and no command links a fake (linktest) or the test tree.
// (hashicorp/raft imports testing itself, for its in-memory helpers; that is
// not ours to change.)
func TestNoCommandLinksOurTestCode(t *testing.T) {
	all := listDeps(t)
	imports := map[string][]string{}
	for _, p := range all {
		imports[p.ImportPath] = p.Imports
	}
	n := 0
	for _, p := range all {
		if !within(p.ImportPath, "cmd") {
			continue
		}
		n++
		for _, d := range append([]string{p.ImportPath}, p.Deps...) {
			if !strings.HasPrefix(d, module+"/") {
				continue
			}
			if strings.HasSuffix(d, "/linktest") || within(d, "test") {
				t.Errorf("%s links %s: test code stays out of binaries", p.ImportPath, d)
			}
			for _, imp := range imports[d] {
				if imp == "testing" {
					t.Errorf("%s links %s, which imports testing: test code stays out of binaries", p.ImportPath, d)
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("found no commands to check")
	}
}
