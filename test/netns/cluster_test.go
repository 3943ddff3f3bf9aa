package netns_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mvstack/mvstack/controller/rest"
	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/test/netns"
)

// clusterFiles writes a new cluster key and admin token into dir and
// returns the key file, the token and the token file.
func clusterFiles(t *testing.T, dir string) (key, token, tokenFile string) {
	t.Helper()
	k, err := proto.NewKey(1)
	if err != nil {
		t.Fatal(err)
	}
	key = filepath.Join(dir, "cluster.key")
	if err := proto.WriteKeyFile(key, k); err != nil {
		t.Fatal(err)
	}
	token, _, _ = rest.NewToken()
	tokenFile = filepath.Join(dir, "admin.token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return key, token, tokenFile
}

// httpFrom is an HTTP client whose connections are dialled inside h's
// namespace: the test process itself lives outside the lab.
func httpFrom(h *netns.Host, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			err = h.Do(func() error {
				var d net.Dialer
				c, err = d.DialContext(ctx, network, addr)
				return err
			})
			return c, err
		}}}
}
