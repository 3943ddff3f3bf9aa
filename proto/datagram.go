package proto

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// Sealed datagrams: single frames outside any session, authenticated with
// the cluster key, for protocols of their own EtherType that push data one
// way (stat frames). A datagram is
//
//	off len
//	  0   1  version (1)
//	  1   1  key id
//	  2   2  reserved, zero
//	  4   8  sender's epoch (random per Sealer)
//	 12   8  frame counter, from 1
//	 20   …  sealed payload, then the 16-byte tag
//
// Keys are derived per purpose, sender MAC and epoch, as for the control
// protocol but under the caller's purpose label, so a datagram of one
// protocol never opens as another's, nor as a control frame. The Opener
// keeps a replay window per sender epoch.

// DatagramHeaderLen is the length of a datagram's cleartext header.
const DatagramHeaderLen = 20

// DatagramOverhead is what sealing adds to a payload.
const DatagramOverhead = DatagramHeaderLen + TagLen

// MinDatagramPayload is the shortest payload a datagram carries unpadded:
// with the overhead it fills the 46-byte Ethernet minimum.
const MinDatagramPayload = MinPayload - DatagramOverhead

// Errors of Opener.Open.
var (
	ErrReplay = errors.New("proto: replayed or too old datagram")
)

// Sealer seals the datagrams one sender sends. It is safe for concurrent use.
type Sealer struct {
	keys    *Keyring
	purpose string
	src     MAC
	epoch   uint64
	counter atomic.Uint64
}

// NewSealer returns a Sealer for datagrams from src under purpose (a label
// such as "mvstack stats v1"), with a random epoch.
func NewSealer(keys *Keyring, purpose string, src MAC) (*Sealer, error) {
	if purpose == "" || purpose == purposeControl {
		return nil, fmt.Errorf("proto: datagram purpose %q must be set and differ from the control protocol's", purpose)
	}
	var b [8]byte
	var epoch uint64
	for epoch == 0 {
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		epoch = binary.BigEndian.Uint64(b[:])
	}
	return &Sealer{keys: keys, purpose: purpose, src: src, epoch: epoch}, nil
}

// Seal appends the sealed datagram of payload, addressed to dst, to buf and
// returns it. A payload under MinDatagramPayload bytes is padded with
// zeros to that length, so that Ethernet's own padding never breaks the tag:
// the receiver gets the zeros too.
func (s *Sealer) Seal(buf []byte, dst MAC, payload []byte) []byte {
	if len(payload) < MinDatagramPayload {
		payload = append(append(make([]byte, 0, MinDatagramPayload), payload...), make([]byte, MinDatagramPayload-len(payload))...)
	}
	k := s.keys.keys[0]
	a, _ := s.keys.aeadFor(s.purpose, k.ID, s.src, s.epoch)
	ctr := s.counter.Add(1)
	start := len(buf)
	buf = append(buf, 1, k.ID, 0, 0)
	buf = binary.BigEndian.AppendUint64(buf, s.epoch)
	buf = binary.BigEndian.AppendUint64(buf, ctr)
	var adbuf [12 + DatagramHeaderLen]byte
	ad := append(append(append(adbuf[:0], dst[:]...), s.src[:]...), buf[start:start+DatagramHeaderLen]...)
	n := nonce(ctr)
	return a.Seal(buf, n[:], payload, ad)
}

// Opener authenticates the datagrams of one purpose. It is safe for
// concurrent use.
type Opener struct {
	keys    *Keyring
	purpose string

	mu     sync.Mutex
	replay map[peerEpoch]*replayWindow
}

// NewOpener returns an Opener for datagrams sealed under purpose.
func NewOpener(keys *Keyring, purpose string) *Opener {
	return &Opener{keys: keys, purpose: purpose, replay: make(map[peerEpoch]*replayWindow)}
}

// Open authenticates a datagram from src to dst and returns its payload,
// decrypted in place in frame. It fails with an error wrapping ErrAuth,
// ErrReplay, ErrBadVersion, ErrBadLength or io.ErrUnexpectedEOF.
func (o *Opener) Open(frame []byte, src, dst MAC) ([]byte, error) {
	if len(frame) < DatagramOverhead {
		return nil, io.ErrUnexpectedEOF
	}
	if frame[0] != 1 {
		return nil, fmt.Errorf("%w %d", ErrBadVersion, frame[0])
	}
	if frame[2] != 0 || frame[3] != 0 {
		return nil, fmt.Errorf("%w in datagram header", ErrBadFlags)
	}
	epoch := binary.BigEndian.Uint64(frame[4:])
	ctr := binary.BigEndian.Uint64(frame[12:])
	a, ok := o.keys.aeadFor(o.purpose, frame[1], src, epoch)
	if !ok {
		return nil, fmt.Errorf("%w: unknown key id %d", ErrAuth, frame[1])
	}
	var adbuf [12 + DatagramHeaderLen]byte
	ad := append(append(append(adbuf[:0], dst[:]...), src[:]...), frame[:DatagramHeaderLen]...)
	n := nonce(ctr)
	body, err := a.Open(frame[DatagramHeaderLen:DatagramHeaderLen], n[:], frame[DatagramHeaderLen:], ad)
	if err != nil {
		return nil, ErrAuth
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	k := peerEpoch{src, epoch}
	w := o.replay[k]
	if w == nil {
		if len(o.replay) >= maxReplayWindows {
			clear(o.replay)
		}
		w = new(replayWindow)
		o.replay[k] = w
	}
	if !w.check(ctr) {
		return nil, ErrReplay
	}
	return body, nil
}
