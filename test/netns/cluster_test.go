package netns_test

import (
	"testing"

	"github.com/mvstack/mvstack/test/netns"
)

// clusterFiles is netns.ClusterFiles for a test: into dir, failing the test
// on an error.
func clusterFiles(t *testing.T, dir string) (key, token, tokenFile string) {
	t.Helper()
	key, token, tokenFile, err := netns.ClusterFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	return key, token, tokenFile
}
