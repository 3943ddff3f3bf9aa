package rest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
)

// ErrBadToken is returned for a string that is not a token.
var ErrBadToken = errors.New("rest: malformed token: want mvs_<id>_<secret>")

// NewToken returns a fresh random token, its id and the SHA-256 of its secret.
func NewToken() (token, id string, hash []byte) {
	var b [20]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	id, secret := hex.EncodeToString(b[:4]), hex.EncodeToString(b[4:])
	h := sha256.Sum256([]byte(secret))
	return "mvs_" + id + "_" + secret, id, h[:]
}

// ParseToken splits a token into its id and the SHA-256 of its secret.
func ParseToken(tok string) (id string, hash []byte, err error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(tok), "mvs_")
	if !ok {
		return "", nil, ErrBadToken
	}
	id, secret, ok := strings.Cut(rest, "_")
	if !ok || id == "" || secret == "" {
		return "", nil, ErrBadToken
	}
	h := sha256.Sum256([]byte(secret))
	return id, h[:], nil
}
