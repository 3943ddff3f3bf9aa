package netns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// builds caches the binaries built by this process. It is process-wide on
// purpose: every test of a run shares one build of each package.
var builds = &buildCache{bins: make(map[string]buildResult)}

type buildCache struct {
	mu   sync.Mutex
	dir  string
	bins map[string]buildResult // by package as given
}

type buildResult struct {
	path string
	err  error
}

// BuildBinaries builds each package (a path relative to the module root
// such as "./cmd/mvaoe", or a full import path) once per test process and
// returns the binaries by name, the last element of the package path
// ("mvaoe"). Later calls return the same files at once. The binaries live
// in a directory under os.TempDir named for this process; [Cleanup] or
// [Main] removes it at the end of the run, and [Sweep] removes those of
// dead runs. A failed build fails the test with the compiler's output.
func BuildBinaries(t testing.TB, pkgs ...string) map[string]string {
	t.Helper()
	bins, err := builds.build(pkgs)
	if err != nil {
		t.Fatal(err)
	}
	return bins
}

// Build is [BuildBinaries] for a program that is not a test; call
// [Cleanup] when done.
func Build(pkgs ...string) (map[string]string, error) { return builds.build(pkgs) }

func (c *buildCache) build(pkgs []string) (map[string]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	names := make(map[string]string)
	var todo []string
	for _, p := range pkgs {
		name := path.Base(p)
		if other, ok := names[name]; ok && other != p {
			return nil, fmt.Errorf("netns: BuildBinaries: %s and %s both make a binary named %s", other, p, name)
		}
		names[name] = p
		if _, ok := c.bins[p]; !ok && !slices.Contains(todo, p) {
			todo = append(todo, p)
		}
	}
	if len(todo) > 0 {
		if err := c.compile(todo); err != nil {
			return nil, err
		}
	}
	out := make(map[string]string, len(pkgs))
	var errs []error
	for name, p := range names {
		r := c.bins[p]
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		out[name] = r.path
	}
	return out, errors.Join(errs...)
}

// compile builds pkgs with one go build each into the cache directory and
// records the outcome, success or failure, so a broken package is not
// rebuilt by every test. c.mu is held.
func (c *buildCache) compile(pkgs []string) error {
	root, err := ModuleRoot()
	if err != nil {
		return err
	}
	if c.dir == "" {
		dir, err := os.MkdirTemp("", self().String()+"-bin-")
		if err != nil {
			return fmt.Errorf("netns: BuildBinaries: %w", err)
		}
		c.dir = dir
	}
	gobin, err := goTool()
	if err != nil {
		return err
	}
	// One go build for all of them lets the go command compile in
	// parallel; only if that fails is each built alone, to tell which
	// package is broken.
	if len(pkgs) > 1 {
		args := append([]string{"build", "-o", c.dir + string(filepath.Separator)}, pkgs...)
		cmd := exec.Command(gobin, args...)
		cmd.Dir = root
		if _, err := cmd.CombinedOutput(); err == nil {
			for _, p := range pkgs {
				c.bins[p] = buildResult{path: filepath.Join(c.dir, path.Base(p))}
			}
			return nil
		}
	}
	for _, p := range pkgs {
		out := filepath.Join(c.dir, path.Base(p))
		cmd := exec.Command(gobin, "build", "-o", out, p)
		cmd.Dir = root
		b, err := cmd.CombinedOutput()
		if err != nil {
			c.bins[p] = buildResult{err: fmt.Errorf("netns: go build %s: %w\n%s", p, err, strings.TrimSpace(string(b)))}
			continue
		}
		c.bins[p] = buildResult{path: out}
	}
	return nil
}

// goTool finds the go command in PATH; go test puts its own toolchain's
// bin directory first.
func goTool() (string, error) {
	p, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("netns: BuildBinaries: no go command in PATH: %w", err)
	}
	return p, nil
}

// ModuleRoot returns the directory of the go.mod that encloses the working
// directory (a test's working directory is its package's directory).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("netns: no go.mod above %s", dir)
		}
	}
}

// Cleanup removes the binaries built by [BuildBinaries] in this process.
// [Main] calls it; call it yourself from a TestMain that does not use Main.
func Cleanup() error {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.dir == "" {
		return nil
	}
	err := os.RemoveAll(builds.dir)
	builds.dir = ""
	clear(builds.bins)
	return err
}

// Main runs the tests of a package that uses the harness and then removes
// what the run left: built binaries (labs are removed by each test's
// cleanup). Use it as
//
//	func TestMain(m *testing.M) { netns.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	if err := Cleanup(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// sweepBuildDirs removes the binary directories of dead runs.
func sweepBuildDirs() error {
	ents, err := os.ReadDir(os.TempDir())
	if err != nil {
		return nil
	}
	var errs []error
	for _, e := range ents {
		if !e.IsDir() || !strings.Contains(e.Name(), "-bin-") {
			continue
		}
		if o, ok := parseOwner(e.Name()); ok && !o.alive() {
			if err := os.RemoveAll(filepath.Join(os.TempDir(), e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
