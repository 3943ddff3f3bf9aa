package target

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Backend is the storage an export serves. ReadAt and WriteAt must be safe
// for concurrent use (positioned I/O); Sync makes completed writes durable.
type Backend interface {
	io.ReaderAt
	io.WriterAt
	Size() int64
	Sync() error
}

// FileOptions says how [OpenFile] opens a backend.
type FileOptions struct {
	ReadOnly bool
	// Direct opens the file with O_DIRECT, bypassing the page cache; I/O
	// then needs aligned buffers, which the target provides.
	Direct bool
	// NoMap reads with pread only. By default a page-cached file is also
	// mapped read-only and reads copy from the mapping: no system call per
	// read (the first read of a page takes a fault instead, and the page
	// tables grow with what was read, about 2 MB per GB). A file that
	// cannot be mapped (address space) is read with pread.
	NoMap bool
}

// File is a Backend over a regular file, a sparse file or a block device,
// read and written with pread and pwrite and synced with fdatasync.
type File struct {
	f    *os.File
	size int64
	// Direct reports whether the file was opened with O_DIRECT.
	Direct bool
	bounce alignedPool // for O_DIRECT I/O from unaligned buffers
	// mapped is the file mapped read-only (MAP_SHARED, so it shows every
	// write at once), or nil.
	mapped []byte
	closed atomic.Bool
}

var _ Backend = (*File)(nil)

// OpenFile opens path as a backend. Its size is fixed at open: a regular
// file's length, or a block device's capacity.
func OpenFile(path string, opt FileOptions) (*File, error) {
	flags := os.O_RDWR
	if opt.ReadOnly {
		flags = os.O_RDONLY
	}
	if opt.Direct {
		flags |= unix.O_DIRECT
	}
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		return nil, fmt.Errorf("target: open backend: %w", err)
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("target: size of backend %s: %w", path, err)
	}
	if size < 512 {
		f.Close()
		return nil, fmt.Errorf("target: backend %s has %d bytes, want at least one 512-byte sector", path, size)
	}
	b := &File{f: f, size: size &^ 511, Direct: opt.Direct}
	if !opt.NoMap && !opt.Direct {
		// Best effort: a file that cannot be mapped is read with pread.
		if m, err := unix.Mmap(int(f.Fd()), 0, int(b.size), unix.PROT_READ, unix.MAP_SHARED); err == nil {
			b.mapped = m
		}
	}
	return b, nil
}

// ReadAt implements io.ReaderAt: a copy from the mapping when the file is
// mapped, else pread. With O_DIRECT it reads through an aligned bounce
// buffer when p is not aligned.
func (b *File) ReadAt(p []byte, off int64) (int, error) {
	if b.mapped != nil && off >= 0 && off < b.size && !b.closed.Load() {
		return b.readMapped(p, off)
	}
	if !b.Direct || aligned(p) {
		return b.f.ReadAt(p, off)
	}
	bp := b.bounce.get(len(p))
	defer b.bounce.put(bp)
	n, err := b.f.ReadAt((*bp)[:len(p)], off)
	copy(p, (*bp)[:n])
	return n, err
}

// readMapped copies from the mapping. A fault there (the file was cut
// short behind our back, or the disk failed under the page) becomes a
// panic on this goroutine only (debug.SetPanicOnFault), which falls back to
// pread, whose error says what went wrong.
func (b *File) readMapped(p []byte, off int64) (n int, err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if recover() != nil {
			n, err = b.f.ReadAt(p, off)
		}
	}()
	n = copy(p, b.mapped[off:])
	if n < len(p) {
		err = io.EOF
	}
	return n, err
}

// WriteAt implements io.WriterAt with pwrite. With O_DIRECT it writes
// through an aligned bounce buffer when p is not aligned.
func (b *File) WriteAt(p []byte, off int64) (int, error) {
	if !b.Direct || aligned(p) {
		return b.f.WriteAt(p, off)
	}
	bp := b.bounce.get(len(p))
	defer b.bounce.put(bp)
	copy(*bp, p)
	return b.f.WriteAt((*bp)[:len(p)], off)
}

// directAlign is the memory alignment O_DIRECT I/O gets.
const directAlign = 4096

func aligned(p []byte) bool {
	return len(p) == 0 || uintptr(unsafe.Pointer(&p[0]))%directAlign == 0
}

// alignedPool keeps buffers aligned for O_DIRECT.
type alignedPool struct{ p sync.Pool }

// get returns an aligned buffer of at least n bytes, at full length.
func (a *alignedPool) get(n int) *[]byte {
	if bp, ok := a.p.Get().(*[]byte); ok && cap(*bp) >= n {
		*bp = (*bp)[:cap(*bp)]
		return bp
	}
	size := max(n, 64<<10)
	raw := make([]byte, size+directAlign)
	skip := (directAlign - int(uintptr(unsafe.Pointer(&raw[0]))%directAlign)) % directAlign
	buf := raw[skip : skip+size : skip+size]
	return &buf
}

func (a *alignedPool) put(bp *[]byte) { a.p.Put(bp) }

// Size is the backend's size in bytes, rounded down to whole sectors.
func (b *File) Size() int64 { return b.size }

// Sync makes written data durable with fdatasync.
func (b *File) Sync() error {
	for {
		err := unix.Fdatasync(int(b.f.Fd()))
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// IsDirect reports whether the file bypasses the page cache (O_DIRECT).
func (b *File) IsDirect() bool { return b.Direct }

// Close unmaps and closes the file. Reads racing with Close fail; they
// never fault the process.
func (b *File) Close() error {
	if b.closed.Swap(true) {
		return b.f.Close()
	}
	if b.mapped != nil {
		_ = unix.Munmap(b.mapped)
	}
	return b.f.Close()
}
