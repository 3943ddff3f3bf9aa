package main

import (
	"bytes"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mvstack/mvstack/controller/replicatest"
	"github.com/mvstack/mvstack/controller/rest"
	"github.com/mvstack/mvstack/controller/state"
)

func TestTokenCreateListRevoke(t *testing.T) {
	srv := httptest.NewUnstartedServer(nil)
	c := replicatest.New(t, []string{srv.Listener.Addr().String()})
	r := c.Replicas[c.Leader(t)]
	h, err := rest.New(rest.Config{Store: r, Members: r})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = h
	srv.Start()
	t.Cleanup(srv.Close)
	admin, id, hash := rest.NewToken()
	if _, err := r.Apply(t.Context(), state.CreateToken{At: time.Now().UTC(), ID: id, Name: "admin", Hash: hash}); err != nil {
		t.Fatal(err)
	}
	tokFile := filepath.Join(t.TempDir(), "admin.token")
	os.WriteFile(tokFile, []byte(admin+"\n"), 0o600)

	mvc := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if err := run(t.Context(), append([]string{"mvcontroller", "token"}, args...), &out, &errb); err != nil {
			t.Fatalf("token %v: %v", args, err)
		}
		return out.String()
	}
	out := mvc("create", "--url", srv.URL, "--token-file", tokFile, "--name", "ops")
	var newID, newTok string
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "id="); ok {
			newID = v
		}
		if v, ok := strings.CutPrefix(l, "token="); ok {
			newTok = v
		}
	}
	if newID == "" || !strings.HasPrefix(newTok, "mvs_"+newID+"_") {
		t.Fatalf("token create printed %q", out)
	}
	// The new token works on its own, and the list shows no secret.
	out = mvc("list", "--url", srv.URL, "--token", newTok)
	if !strings.Contains(out, "id="+newID+" name=ops") || strings.Contains(out, newTok) {
		t.Errorf("token list: %q", out)
	}
	t.Setenv("MVCONTROLLER_TOKEN", admin)
	mvc("revoke", "--url", srv.URL, newID)
	if out := mvc("list", "--url", srv.URL); strings.Contains(out, newID) {
		t.Errorf("revoked token still listed: %q", out)
	}
	var out2, errb bytes.Buffer
	err = run(t.Context(), []string{"mvcontroller", "token", "list", "--url", srv.URL, "--token", newTok}, &out2, &errb)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("revoked token: %v, want 401", err)
	}
	if tok := mvc("new"); !strings.HasPrefix(tok, "mvs_") {
		t.Errorf("token new printed %q", tok)
	}
}
