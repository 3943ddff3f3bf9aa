package rrd

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"sync"
)

// The journal is a Store's write-ahead log: each Commit appends one
// record holding that commit's updates and syncs the journal once; the
// RRD files themselves are written at checkpoints, many updates per file
// at a time. After a crash, OpenStore replays the journal into the files
// (skipping updates a file already holds, by time) and checkpoints.
//
// Record: magic "JRNL", payload length u32, CRC-32C of the payload u32,
// payload: entries until its end, each
//
//	name length u16, name, seconds i64, microseconds u32, value count u16,
//	values (kind u8, negative u8, bits u64)
//
// A torn or corrupt record ends the journal: it and anything after it
// were never acknowledged.
var journalMagic = [4]byte{'J', 'R', 'N', 'L'}

// Journal segments, per shard of the store: the one commits go to, and
// the one a checkpoint in flight covers.
const (
	journalFmt    = "journal-%d.wal"
	journalOldFmt = "journal-%d.old"
)

// appendJournalEntry encodes one update.
func appendJournalEntry(b []byte, name string, t Time, vals []Value) []byte {
	le := binary.LittleEndian
	b = le.AppendUint16(b, uint16(len(name)))
	b = append(b, name...)
	b = le.AppendUint64(b, uint64(t.Sec))
	b = le.AppendUint32(b, uint32(t.Usec))
	b = le.AppendUint16(b, uint16(len(vals)))
	for _, v := range vals {
		neg := byte(0)
		if v.neg {
			neg = 1
		}
		b = append(b, byte(v.kind), neg)
		if v.kind == kindInt {
			b = le.AppendUint64(b, v.mag)
		} else {
			b = le.AppendUint64(b, math.Float64bits(v.f))
		}
	}
	return b
}

// journalRecord wraps a commit's entries.
func journalRecord(dst, payload []byte) []byte {
	le := binary.LittleEndian
	dst = append(dst, journalMagic[:]...)
	dst = le.AppendUint32(dst, uint32(len(payload)))
	dst = le.AppendUint32(dst, crc32.Checksum(payload, castagnoli))
	return append(dst, payload...)
}

type journalEntry struct {
	name string
	t    Time
	vals []Value
}

// readJournal decodes records until the end or the first damaged one.
func readJournal(r io.Reader, fn func(journalEntry) error) error {
	br := bufio.NewReaderSize(r, 1<<20)
	le := binary.LittleEndian
	var hdr [12]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return nil // end, or a torn header
		}
		if [4]byte(hdr[:4]) != journalMagic {
			return nil
		}
		n := le.Uint32(hdr[4:])
		if n > 1<<30 {
			return nil
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(br, payload); err != nil {
			return nil
		}
		if crc32.Checksum(payload, castagnoli) != le.Uint32(hdr[8:]) {
			return nil
		}
		if err := decodeJournalPayload(payload, fn); err != nil {
			return err
		}
	}
}

func decodeJournalPayload(p []byte, fn func(journalEntry) error) error {
	le := binary.LittleEndian
	bad := fmt.Errorf("%w: journal entry", ErrCorrupt)
	for len(p) > 0 {
		if len(p) < 2 {
			return bad
		}
		nl := int(le.Uint16(p))
		p = p[2:]
		if len(p) < nl+14 {
			return bad
		}
		e := journalEntry{name: string(p[:nl])}
		p = p[nl:]
		e.t = Time{Sec: int64(le.Uint64(p)), Usec: int64(le.Uint32(p[8:]))}
		nv := int(le.Uint16(p[12:]))
		p = p[14:]
		if len(p) < nv*10 {
			return bad
		}
		e.vals = make([]Value, nv)
		for i := range e.vals {
			k, neg, bits := valueKind(p[0]), p[1] == 1, le.Uint64(p[2:])
			switch k {
			case kindUnknown:
			case kindInt:
				e.vals[i] = Value{kind: k, neg: neg, mag: bits, f: float64(bits)}
				if neg {
					e.vals[i].f = -float64(bits)
				}
			case kindFloat:
				e.vals[i] = Float(math.Float64frombits(bits))
			default:
				return bad
			}
			p = p[10:]
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// journal is the open log file.
type journal struct {
	f        *os.File
	size     int64
	inflight sync.WaitGroup // commits syncing this segment
}

func openJournal(path string) (*journal, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("rrd: journal: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("rrd: journal: %w", err)
	}
	return &journal{f: f, size: st.Size()}, nil
}

// reset empties the journal once its updates are in the files.
func (j *journal) reset() error {
	if err := j.f.Truncate(0); err != nil {
		return fmt.Errorf("rrd: journal truncate: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("rrd: journal sync: %w", err)
	}
	j.size = 0
	return nil
}

var errJournalName = errors.New("rrd: journal: name longer than 65535 bytes")
