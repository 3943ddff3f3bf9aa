package proto_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mvstack/mvstack/proto"
)

func TestKeyFileRoundTripAndPermissions(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cluster.key")
	k1, _ := proto.NewKey(1)
	k2, _ := proto.NewKey(2)
	if err := proto.WriteKeyFile(path, k1, k2); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %04o, want 0600", fi.Mode().Perm())
	}
	r, err := proto.LoadKeyring(path)
	if err != nil {
		t.Fatal(err)
	}
	if keys := r.Keys(); len(keys) != 2 || keys[0] != k1 || keys[1] != k2 {
		t.Fatal("keys did not survive the round trip in order")
	}

	os.Chmod(path, 0o644)
	_, err = proto.LoadKeyring(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key file: got %v, want a refusal naming the path and the fix", err)
	}
	_, err = proto.LoadKeyring(filepath.Join(dir, "missing.key"))
	if err == nil || !strings.Contains(err.Error(), "mvctl keygen") {
		t.Fatalf("missing key file: got %v, want the way to make one", err)
	}
}

func TestKeyFileParseErrorsNameTheLine(t *testing.T) {
	for _, tc := range []struct{ desc, text, want string }{
		{"empty", "# nothing\n", "no cluster key"},
		{"bad id", "mvkey 300 " + strings.Repeat("ab", 32), "line 1"},
		{"short key", "# c\nmvkey 1 abcd", "line 2"},
		{"garbage", "hello", "line 1"},
	} {
		_, err := proto.ParseKeys([]byte(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want mention of %q", tc.desc, err, tc.want)
		}
	}
}

func TestKeyringAllowsAtMostTwoDistinctKeys(t *testing.T) {
	k1, _ := proto.NewKey(1)
	k1b, _ := proto.NewKey(1)
	k2, _ := proto.NewKey(2)
	k3, _ := proto.NewKey(3)
	if _, err := proto.NewKeyring(); !errors.Is(err, proto.ErrNoKey) {
		t.Errorf("no keys: %v", err)
	}
	if _, err := proto.NewKeyring(k1, k1b); err == nil {
		t.Error("two keys with one id were accepted")
	}
	if _, err := proto.NewKeyring(k1, k2, k3); err == nil {
		t.Error("three keys were accepted")
	}
}
