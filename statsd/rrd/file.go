package rrd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
)

// File is an RRD in a file of mvstack's format (see format.go and
// docs/rrd.md). Updates change the state in memory; Commit makes them
// durable. A crash loses at most the updates since the last Commit and
// never leaves a file that does not open. A File is not safe for
// concurrent use.
type File struct {
	path     string
	f        fileIO
	hdr      header
	lay      layout
	state    State
	gen      uint64    // generation of the newest durable slot
	next     int       // slot index (0, 1) the next commit writes
	pend     []redoRow // rows of updates since the last slot write
	pendVals []float64
	// carried are rows the newest durable slot names that may not be in
	// the archives yet.
	carried     []redoRow
	carriedVals []float64
	// inflight are the rows of a slot written but not yet known durable.
	inflight     []redoRow
	inflightVals []float64
	redo         []redoRow
	flushing     bool // the slot being written sends the carried rows to the archives
	dirty        bool
	wrap         func(*os.File) fileIO // reopens after a rewrite
	sc           scratch
	buf          []byte
}

// fileIO is what a File needs of its *os.File (tests record the writes
// to replay crashes).
type fileIO interface {
	ReadAt(b []byte, off int64) (int, error)
	WriteAt(b []byte, off int64) (int, error)
	Sync() error
	Close() error
	Stat() (os.FileInfo, error)
}

// CreateOptions tune a new file. The zero value is the default.
type CreateOptions struct {
	// RedoBytes is the room in each state slot for the rows one commit
	// writes (0: DefaultRedoRows rows). A commit that writes more rewrites
	// the file instead.
	RedoBytes int64
	// Overwrite replaces an existing file (rrdtool create does by default).
	Overwrite bool
}

// Create makes a new RRD file atomically: it is written to a temporary
// file, synced and renamed into place, so path holds either nothing (or
// the old file) or the whole new one.
func Create(path string, spec Spec, start Time, opts *CreateOptions) error {
	r, err := New(spec, start)
	if err != nil {
		return err
	}
	return r.Save(path, opts)
}

// Save writes the in-memory RRD to path atomically (temporary file, fsync,
// rename, fsync of the directory).
func (r *RRD) Save(path string, opts *CreateOptions) error {
	var o CreateOptions
	if opts != nil {
		o = *opts
	}
	if o.RedoBytes == 0 {
		o.RedoBytes = r.Spec.defaultRedoBytes()
	}
	if !o.Overwrite {
		if _, err := os.Stat(path); err == nil {
			return fmt.Errorf("rrd: create %s: %w", path, os.ErrExist)
		}
	}
	return writeImage(path, header{Spec: r.Spec, RedoBytes: o.RedoBytes}, &r.State, 1, r.readRow)
}

// writeImage writes a whole file: header, slot 0 with gen, an empty slot
// 1, rows from read.
func writeImage(path string, h header, st *State, gen uint64, read RowReader) (err error) {
	if err := h.Spec.Validate(); err != nil {
		return err
	}
	l := h.Spec.layout(h.RedoBytes)
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("rrd: create %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	head := make([]byte, l.dataOffset)
	h.marshal(head[:l.headerSize], l)
	h.Spec.marshalSlot(head[l.headerSize:l.headerSize+l.slotSize], &slot{Gen: gen, State: *st})
	if _, err := tmp.Write(head); err != nil {
		return fmt.Errorf("rrd: write %s: %w", path, err)
	}
	nds := len(h.Spec.DS)
	row := make([]float64, nds)
	for r, a := range h.Spec.RRA {
		buf := make([]byte, 0, min(int(a.Rows), 4096)*nds*8)
		for i := uint64(0); i < a.Rows; i++ {
			if err := read(r, i, row); err != nil {
				return err
			}
			for _, v := range row {
				buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(v))
			}
			if len(buf) == cap(buf) || i == a.Rows-1 {
				if _, err := tmp.Write(buf); err != nil {
					return fmt.Errorf("rrd: write %s: %w", path, err)
				}
				buf = buf[:0]
			}
		}
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("rrd: sync %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("rrd: close %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rrd: rename %s: %w", path, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("rrd: sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("rrd: sync directory %s: %w", dir, err)
	}
	return nil
}

// Open opens an RRD file for update and fetch. It picks the newer valid
// state slot and replays that slot's rows, so a file a crash interrupted
// opens in the state of its last finished commit.
func Open(path string) (*File, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("rrd: open: %w", err)
	}
	willNeed(f)
	rf, err := openFile(path, f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("rrd: open %s: %w", path, err)
	}
	return rf, nil
}

func openFile(path string, f fileIO) (*File, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	// The header's size follows from its counts.
	first := make([]byte, min(st.Size(), pageSize))
	if _, err := f.ReadAt(first, 0); err != nil {
		return nil, err
	}
	if len(first) >= headerFixed {
		nds, nrra := int64(binary.LittleEndian.Uint32(first[24:])), int64(binary.LittleEndian.Uint32(first[28:]))
		if need := headerFixed + nds*dsDefSize + nrra*rraDefSize + 4; need > int64(len(first)) && need <= st.Size() && need < 1<<24 {
			first = make([]byte, need)
			if _, err := f.ReadAt(first, 0); err != nil {
				return nil, err
			}
		}
	}
	var h header
	if err := h.UnmarshalBinary(first); err != nil {
		return nil, err
	}
	l := h.Spec.layout(h.RedoBytes)
	if st.Size() != l.fileSize {
		return nil, fmt.Errorf("%w: size %d, the definition needs %d", ErrCorrupt, st.Size(), l.fileSize)
	}
	rf := &File{path: path, f: f, hdr: h, lay: l, buf: make([]byte, l.slotSize)}
	rf.wrap = func(f *os.File) fileIO { return f }
	var best *slot
	bestIdx := -1
	var slotErr error
	for i := 0; i < 2; i++ {
		if _, err := f.ReadAt(rf.buf, l.headerSize+int64(i)*l.slotSize); err != nil {
			return nil, err
		}
		sl, err := h.Spec.unmarshalSlot(rf.buf)
		if err != nil {
			slotErr = err
			continue
		}
		if best == nil || sl.Gen > best.Gen {
			best, bestIdx = sl, i
		}
	}
	if best == nil {
		return nil, fmt.Errorf("no valid state slot: %w", slotErr)
	}
	// Replay the rows of the last commit: they may not all have reached
	// the disk before a crash.
	if len(best.Redo) > 0 {
		if err := rf.writeRows(best.Redo); err != nil {
			return nil, err
		}
		if err := f.Sync(); err != nil {
			return nil, err
		}
	}
	rf.state, rf.gen, rf.next = best.State, best.Gen, 1-bestIdx
	return rf, nil
}

// Spec returns the file's definition.
func (f *File) Spec() Spec { return f.hdr.Spec.clone() }

// State returns a copy of the current state (including uncommitted
// updates).
func (f *File) State() State { return f.state.Clone() }

// Path returns the file's path.
func (f *File) Path() string { return f.path }

// Update applies one update in memory; Commit makes it durable.
func (f *File) Update(t Time, vals ...Value) error {
	if err := f.hdr.Spec.update(&f.state, &f.sc, t, vals, f.addRow); err != nil {
		return err
	}
	f.dirty = true
	return nil
}

func (f *File) addRow(rra int, row uint64, vals []float64) {
	off := len(f.pendVals)
	f.pendVals = append(f.pendVals, vals...)
	f.pend = append(f.pend, redoRow{rra: rra, row: row, vals: f.pendVals[off:len(f.pendVals):len(f.pendVals)]})
}

// readRow reads a row, uncommitted rows included.
func (f *File) readRow(rra int, row uint64, dst []float64) error {
	for _, rows := range [3][]redoRow{f.pend, f.inflight, f.carried} {
		for i := len(rows) - 1; i >= 0; i-- {
			if p := rows[i]; p.rra == rra && p.row == row {
				copy(dst, p.vals)
				return nil
			}
		}
	}
	nds := len(f.hdr.Spec.DS)
	b := make([]byte, 8*nds)
	if _, err := f.f.ReadAt(b, f.lay.rraOffset[rra]+int64(row)*int64(nds)*8); err != nil {
		return fmt.Errorf("rrd: read %s: %w", f.path, err)
	}
	for j := range dst {
		dst[j] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*j:]))
	}
	return nil
}

// Fetch is RRD.Fetch on the file.
func (f *File) Fetch(cf CF, start, end int64, res uint64) (*FetchResult, error) {
	return f.hdr.Spec.fetch(&f.state, cf, start, end, res, f.readRow)
}

// Last returns the time of the last update.
func (f *File) Last() Time { return f.state.LastUp }

// First returns the time of the oldest row of archive rra.
func (f *File) First(rra int) (int64, error) { return first(&f.hdr.Spec, &f.state, rra) }

// ReadRow reads row `row` of archive rra (ring index) into dst.
func (f *File) ReadRow(rra int, row uint64, dst []float64) error { return f.readRow(rra, row, dst) }

// Commit makes the updates since the last commit durable and writes
// them into the archives: the new state and its rows go to the older
// state slot, fsync, then the rows go to the archives, fsync.
func (f *File) Commit() error {
	if f.dirty {
		rewrote, err := f.writeSlot()
		if err != nil {
			return err
		}
		if !rewrote {
			if err := f.f.Sync(); err != nil {
				return fmt.Errorf("rrd: sync %s: %w", f.path, err)
			}
			f.slotDurable()
		}
	}
	if len(f.carried) > 0 {
		if err := f.flushCarried(); err != nil {
			return err
		}
		if err := f.f.Sync(); err != nil {
			return fmt.Errorf("rrd: sync %s: %w", f.path, err)
		}
	}
	return nil
}

// writeSlot writes the next state slot. Its redo log names every row
// not yet known to be in the archives: the carried rows of earlier slots
// and the new ones. Rows stay in the redo log over several checkpoints
// (one contiguous slot write per file instead of a write per archive);
// once the log is half full the carried rows go to the archives, in the
// same sync phase as this slot, which names them too: whichever slot
// survives a crash names them. When the rows do not fit the redo room at
// all, the whole file is rewritten atomically instead (rewrote; the file
// is then durable and clean).
func (f *File) writeSlot() (rewrote bool, err error) {
	s := &f.hdr.Spec
	capRows := s.redoCap(f.lay)
	if len(f.carried)+len(f.pend) > capRows {
		return true, f.rewrite()
	}
	f.redo = append(append(f.redo[:0], f.carried...), f.pend...)
	sl := slot{Gen: f.gen + 1, State: f.state, Redo: f.redo}
	n := s.marshalSlot(f.buf, &sl)
	if _, err := f.f.WriteAt(f.buf[:n], f.lay.headerSize+int64(f.next)*f.lay.slotSize); err != nil {
		return false, fmt.Errorf("rrd: write %s: %w", f.path, err)
	}
	f.flushing = len(f.redo) > capRows/2
	if f.flushing {
		if err := f.writeRows(f.carried); err != nil {
			return false, err
		}
	}
	// The new rows are in flight until the slot is durable; updates from
	// now on collect in a fresh pend.
	f.inflight, f.pend = f.pend, f.inflight[:0]
	f.inflightVals, f.pendVals = f.pendVals, f.inflightVals[:0]
	f.dirty = false
	return false, nil
}

// slotDurable records that the slot writeSlot wrote is on disk: its new
// rows join the carried ones (or replace them when they were written to
// the archives in that phase).
func (f *File) slotDurable() {
	f.gen++
	f.next = 1 - f.next
	if f.flushing {
		f.carried, f.inflight = f.inflight, f.carried[:0]
		f.carriedVals, f.inflightVals = f.inflightVals, f.carriedVals[:0]
	} else {
		nds := len(f.hdr.Spec.DS)
		for _, r := range f.inflight {
			f.carriedVals = append(f.carriedVals, r.vals...)
			f.carried = append(f.carried, r)
		}
		// carriedVals may have moved: re-point the rows.
		for i := range f.carried {
			f.carried[i].vals = f.carriedVals[i*nds : (i+1)*nds : (i+1)*nds]
		}
		f.inflight, f.inflightVals = f.inflight[:0], f.inflightVals[:0]
	}
	f.flushing = false
}

// flushCarried writes the carried rows to the archives (their slot is
// durable).
func (f *File) flushCarried() error {
	if err := f.writeRows(f.carried); err != nil {
		return err
	}
	f.carried, f.carriedVals = f.carried[:0], f.carriedVals[:0]
	return nil
}

// writeRows writes rows to the archives, joining neighbours into one write.
func (f *File) writeRows(rows []redoRow) error {
	nds := len(f.hdr.Spec.DS)
	rs := int64(nds) * 8
	b := f.buf[:0]
	var start int64 = -1
	flush := func() error {
		if len(b) > 0 {
			if _, err := f.f.WriteAt(b, start); err != nil {
				return fmt.Errorf("rrd: write %s: %w", f.path, err)
			}
		}
		b = b[:0]
		return nil
	}
	for _, r := range rows {
		off := f.lay.rraOffset[r.rra] + int64(r.row)*rs
		if off != start+int64(len(b)) || len(b)+int(rs) > cap(f.buf) {
			if err := flush(); err != nil {
				return err
			}
			start = off
		}
		for _, v := range r.vals {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		}
	}
	err := flush()
	f.buf = b[:cap(b)]
	return err
}

// rewrite replaces the file by a new image with the current state.
func (f *File) rewrite() error {
	if err := writeImage(f.path, f.hdr, &f.state, f.gen+1, f.readRow); err != nil {
		return err
	}
	nf, err := os.OpenFile(f.path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("rrd: reopen %s: %w", f.path, err)
	}
	f.f.Close()
	f.f = f.wrap(nf)
	f.gen++
	f.next = 1
	f.pend, f.pendVals = f.pend[:0], f.pendVals[:0]
	f.carried, f.carriedVals = f.carried[:0], f.carriedVals[:0]
	f.inflight, f.inflightVals = f.inflight[:0], f.inflightVals[:0]
	f.dirty = false
	return nil
}

// Close commits pending updates and closes the file.
func (f *File) Close() error {
	err := f.Commit()
	if cerr := f.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Load reads the whole file into memory.
func (f *File) Load() (*RRD, error) {
	r := &RRD{Spec: f.hdr.Spec.clone(), State: f.state.Clone()}
	nds := len(r.Spec.DS)
	r.Data = make([][]float64, len(r.Spec.RRA))
	for i, a := range r.Spec.RRA {
		r.Data[i] = make([]float64, int(a.Rows)*nds)
		for row := uint64(0); row < a.Rows; row++ {
			if err := f.readRow(i, row, r.Data[i][int(row)*nds:int(row+1)*nds]); err != nil {
				return nil, err
			}
		}
	}
	return r, nil
}

var errClosed = errors.New("rrd: store closed")
