package proto

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
)

// KeyLen is the length of a cluster key.
const KeyLen = 32

// Key is one cluster key with its one-byte id. The id travels in every
// frame so a receiver knows which of its keys to try.
type Key struct {
	ID     uint8
	Secret [KeyLen]byte
}

// NewKey returns a random key with the given id.
func NewKey(id uint8) (Key, error) {
	k := Key{ID: id}
	if _, err := rand.Read(k.Secret[:]); err != nil {
		return Key{}, fmt.Errorf("proto: reading random key: %w", err)
	}
	return k, nil
}

// Keyring holds the cluster keys a process accepts: the first seals what it
// sends, every key opens what it receives, so a key can be rotated without
// downtime (add the new key everywhere, make it first everywhere, drop the
// old one). A Keyring is safe for concurrent use and never changes after
// construction; it caches the keys it derives per sender.
type Keyring struct {
	keys []Key

	mu    sync.Mutex
	cache map[senderKey]cipher.AEAD
}

type senderKey struct {
	purpose string
	id      uint8
	mac     MAC
	epoch   uint64
}

// purposeControl labels the keys of the control protocol; other users of
// the cluster key (stat frames) derive theirs under other labels, so a
// frame of one can never be taken for the other.
const purposeControl = "mvstack control v1"

// maxCachedSenders bounds the derived-key cache; it is cleared when full.
const maxCachedSenders = 8192

// ErrNoKey is returned by NewKeyring without keys.
var ErrNoKey = errors.New("proto: no cluster key")

// NewKeyring returns a keyring. keys[0] seals outgoing frames; at most two
// keys are allowed, with distinct ids.
func NewKeyring(keys ...Key) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, ErrNoKey
	}
	if len(keys) > 2 {
		return nil, fmt.Errorf("proto: %d cluster keys: at most 2 are valid at once (the current one and the next)", len(keys))
	}
	if len(keys) == 2 && keys[0].ID == keys[1].ID {
		return nil, fmt.Errorf("proto: both cluster keys have id %d: rotation needs distinct ids", keys[0].ID)
	}
	return &Keyring{keys: append([]Key(nil), keys...), cache: make(map[senderKey]cipher.AEAD)}, nil
}

// Primary is the key that seals outgoing frames.
func (r *Keyring) Primary() Key { return r.keys[0] }

// Keys returns the keys of the ring, the primary first.
func (r *Keyring) Keys() []Key { return append([]Key(nil), r.keys...) }

// aead returns the AEAD of the sender (mac, epoch) under key id, deriving it
// on first use: AES-256-GCM keyed with HKDF-SHA256(cluster key, info =
// purpose ‖ MAC ‖ epoch), where the purpose of the control protocol is
// "mvstack control v1". A key per sender epoch means the
// 64-bit frame counter alone is a unique nonce.
func (r *Keyring) aead(id uint8, mac MAC, epoch uint64) (cipher.AEAD, bool) {
	return r.aeadFor(purposeControl, id, mac, epoch)
}

func (r *Keyring) aeadFor(purpose string, id uint8, mac MAC, epoch uint64) (cipher.AEAD, bool) {
	sk := senderKey{purpose, id, mac, epoch}
	r.mu.Lock()
	a, ok := r.cache[sk]
	r.mu.Unlock()
	if ok {
		return a, true
	}
	var secret *[KeyLen]byte
	for i := range r.keys {
		if r.keys[i].ID == id {
			secret = &r.keys[i].Secret
		}
	}
	if secret == nil {
		return nil, false
	}
	info := make([]byte, 0, 32)
	info = append(info, purpose...)
	info = append(info, mac[:]...)
	info = binary.BigEndian.AppendUint64(info, epoch)
	k, err := hkdf.Key(sha256.New, secret[:], nil, string(info), 32)
	if err != nil {
		panic("proto: hkdf: " + err.Error()) // cannot happen for 32 bytes of SHA-256
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		panic("proto: aes: " + err.Error())
	}
	a, err = cipher.NewGCM(block)
	if err != nil {
		panic("proto: gcm: " + err.Error())
	}
	r.mu.Lock()
	if len(r.cache) >= maxCachedSenders {
		clear(r.cache)
	}
	r.cache[sk] = a
	r.mu.Unlock()
	return a, true
}

// nonce is the 12-byte GCM nonce of a frame counter.
func nonce(counter uint64) [12]byte {
	var n [12]byte
	binary.BigEndian.PutUint64(n[4:], counter)
	return n
}

// additionalData authenticates the Ethernet addresses with the header, so a
// frame cannot be replayed to another node or from another source address.
func additionalData(buf []byte, src, dst MAC, header []byte) []byte {
	buf = append(buf[:0], dst[:]...)
	buf = append(buf, src[:]...)
	return append(buf, header...)
}

// ErrAuth is the cause of every frame dropped because it failed authentication.
var ErrAuth = errors.New("proto: frame failed authentication")

// seal seals the frame in buf: the body has been written at
// buf[HeaderLen:HeaderLen+bodyLen]; seal writes the header in front of it,
// encrypts the body in place and appends the tag. buf must have room for
// HeaderLen+bodyLen+TagLen bytes. h.KeyID is set to the primary key's id.
//
// A frame shorter than the Ethernet minimum would be padded on the wire and
// the padding would break its tag, so a short body is padded with zeros
// before sealing (buf must have room for MinPayload bytes).
func (r *Keyring) seal(buf []byte, h Header, src, dst MAC, bodyLen int) []byte {
	k := r.keys[0]
	a, _ := r.aead(k.ID, src, h.SrcEpoch)
	return sealWith(a, k.ID, buf, h, src, dst, bodyLen, nil)
}

// aeadScratch holds the nonce and the additional data of one seal or open.
// They escape through the cipher.AEAD interface, so a caller that seals
// or opens many frames keeps one of these instead of allocating both per
// frame. nil means allocate.
type aeadScratch struct {
	nonce [12]byte
	ad    [12 + HeaderLen]byte
}

// sealWith is seal with the sender's AEAD already derived: a is
// r.aead(id, src, h.SrcEpoch) for the primary key id.
func sealWith(a cipher.AEAD, id uint8, buf []byte, h Header, src, dst MAC, bodyLen int, sc *aeadScratch) []byte {
	if sc == nil {
		sc = new(aeadScratch)
	}
	if short := MinPayload - (HeaderLen + bodyLen + TagLen); short > 0 {
		clear(buf[HeaderLen+bodyLen : HeaderLen+bodyLen+short])
		bodyLen += short
	}
	h.KeyID = id
	h.marshal(buf[:HeaderLen])
	ad := additionalData(sc.ad[:0], src, dst, buf[:HeaderLen])
	sc.nonce = nonce(h.Counter)
	return a.Seal(buf[:HeaderLen], sc.nonce[:], buf[HeaderLen:HeaderLen+bodyLen], ad)
}

// openWith authenticates a frame whose header has been decoded into h and
// returns its body, decrypted in place. a is the AEAD of the sender
// (src, h.SrcEpoch) under key h.KeyID.
func openWith(a cipher.AEAD, h *Header, frame []byte, src, dst MAC, sc *aeadScratch) ([]byte, error) {
	if len(frame) < HeaderLen+TagLen {
		return nil, fmt.Errorf("%w: %d-byte frame is shorter than header and tag", ErrBadLength, len(frame))
	}
	if sc == nil {
		sc = new(aeadScratch)
	}
	ad := additionalData(sc.ad[:0], src, dst, frame[:HeaderLen])
	sc.nonce = nonce(h.Counter)
	body, err := a.Open(frame[HeaderLen:HeaderLen], sc.nonce[:], frame[HeaderLen:], ad)
	if err != nil {
		return nil, ErrAuth
	}
	return body, nil
}

// Key files.
//
// A key file holds one or two lines "mvkey <id> <64 hex digits>"; '#'
// starts a comment. The first key seals what the process sends.

// LoadKeyring reads a key file. It refuses a file that its group or others
// may read, naming the path and the fix.
func LoadKeyring(path string) (*Keyring, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("proto: cluster key file %s does not exist: create one with 'mvctl keygen --out %s' and copy it to every node", path, path)
		}
		return nil, fmt.Errorf("proto: cluster key file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("proto: cluster key file %s has mode %04o: others may read it; fix with 'chmod 600 %s'", path, fi.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("proto: reading cluster key file: %w", err)
	}
	keys, err := ParseKeys(data)
	if err != nil {
		return nil, fmt.Errorf("proto: cluster key file %s: %w", path, err)
	}
	return NewKeyring(keys...)
}

// ParseKeys parses the contents of a key file.
func ParseKeys(data []byte) ([]Key, error) {
	var keys []Key
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		f := strings.Fields(text)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 || f[0] != "mvkey" {
			return nil, fmt.Errorf("line %d: want 'mvkey <id> <64 hex digits>'", line)
		}
		id, err := strconv.ParseUint(f[1], 10, 8)
		if err != nil {
			return nil, fmt.Errorf("line %d: key id %q is not a number from 0 to 255", line, f[1])
		}
		secret, err := hex.DecodeString(f[2])
		if err != nil || len(secret) != KeyLen {
			return nil, fmt.Errorf("line %d: key must be %d hex digits", line, 2*KeyLen)
		}
		k := Key{ID: uint8(id)}
		copy(k.Secret[:], secret)
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, ErrNoKey
	}
	return keys, nil
}

// FormatKeys renders keys in the key file format.
func FormatKeys(keys ...Key) []byte {
	var b bytes.Buffer
	b.WriteString("# mvstack cluster keys: the first seals what this host sends; all open what it receives.\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "mvkey %d %s\n", k.ID, hex.EncodeToString(k.Secret[:]))
	}
	return b.Bytes()
}

// WriteKeyFile writes keys to path with mode 0600, atomically: a crash
// leaves the old file or the new one.
func WriteKeyFile(path string, keys ...Key) error {
	tmp, err := os.CreateTemp(dirOf(path), ".mvkey-*")
	if err != nil {
		return fmt.Errorf("proto: writing key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(FormatKeys(keys...)); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func dirOf(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		if i == 0 {
			return "/"
		}
		return path[:i]
	}
	return "."
}
