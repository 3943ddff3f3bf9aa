package netns

import (
	"os"
	"strings"
	"testing"
)

func TestBuildNamesTheBrokenPackage(t *testing.T) {
	c := &buildCache{bins: make(map[string]buildResult)}
	t.Cleanup(func() { os.RemoveAll(c.dir) })
	good, bad := "./test/netns/testdata/nsinfo", "./test/netns/testdata/broken"
	bins, err := c.build([]string{good, bad})
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "notDefinedAnywhere") {
		t.Errorf("building a broken package: error %v, want one naming %s and the compiler's complaint", err, bad)
	}
	if _, ok := bins["broken"]; ok {
		t.Error("the broken package has a binary")
	}
	// The good one is still built, and a later call reuses it.
	again, err := c.build([]string{good})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(again["nsinfo"]); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("nsinfo binary %q: %v, want an executable", again["nsinfo"], err)
	}
	if _, err := c.build([]string{"./a/x", "./b/x"}); err == nil {
		t.Error("two packages with the same binary name were accepted")
	}
}
