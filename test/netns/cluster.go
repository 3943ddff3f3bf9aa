package netns

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/mvstack/mvstack/controller/rest"
	"github.com/mvstack/mvstack/proto"
)

// ClusterFiles writes a new cluster key (cluster.key) and admin API token
// (admin.token) into dir, for daemons started in a lab, and returns the key
// file, the token and the token file.
func ClusterFiles(dir string) (key, token, tokenFile string, err error) {
	k, err := proto.NewKey(1)
	if err != nil {
		return "", "", "", err
	}
	key = filepath.Join(dir, "cluster.key")
	if err := proto.WriteKeyFile(key, k); err != nil {
		return "", "", "", err
	}
	token, _, _ = rest.NewToken()
	tokenFile = filepath.Join(dir, "admin.token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		return "", "", "", err
	}
	return key, token, tokenFile, nil
}

// HTTPClient is an HTTP client whose connections are dialled inside h's
// namespace, for a process that lives outside the lab.
func (h *Host) HTTPClient(timeout time.Duration) *http.Client {
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
