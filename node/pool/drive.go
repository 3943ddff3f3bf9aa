package pool

import (
	"errors"
	"fmt"
	"io"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// drive is what a pool lives on. fileDrive is the real one; tests put a
// crash simulator in its place.
type drive interface {
	io.ReaderAt
	io.WriterAt
	// Size is the drive's capacity in bytes.
	Size() int64
	// WriteMeta writes b at off and returns once it is durable
	// (O_DSYNC: it flushes only its own range, not the data written
	// before it).
	WriteMeta(b []byte, off int64) error
	// Sync makes written data durable (fdatasync).
	Sync() error
	// Flush makes everything durable, including the effect of Zero and
	// Reserve (fsync).
	Flush() error
	// Zero makes [off, off+n) read as zeros, freeing the space where the
	// drive can (hole punching on files, BLKZEROOUT on block devices).
	Zero(off, n int64) error
	// Reserve asks the file system to allocate [off, off+n) now, so that
	// later writes there do not fail for lack of space. Block devices
	// do nothing.
	Reserve(off, n int64) error
	Close() error
}

// fileDrive is a regular file or a block device.
type fileDrive struct {
	f     *os.File
	meta  *os.File // the same drive opened O_DSYNC, for WriteMeta
	size  int64
	block bool
}

// openDrive opens a regular file or a block device. A block device opened
// for writing is opened O_EXCL, which the kernel refuses (ErrBusy) while
// the device is mounted or claimed by another exclusive opener.
func openDrive(path string, flags int) (*fileDrive, error) {
	main := flags
	if fi, err := os.Stat(path); err == nil && fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0 && flags&(os.O_WRONLY|os.O_RDWR) != 0 {
		main |= os.O_EXCL
	}
	f, err := os.OpenFile(path, main, 0)
	if errors.Is(err, unix.EBUSY) {
		return nil, fmt.Errorf("%w: %w", ErrBusy, err)
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	d := &fileDrive{f: f, block: fi.Mode()&os.ModeDevice != 0}
	switch {
	case fi.Mode().IsRegular():
		d.size = fi.Size()
	case d.block && fi.Mode()&os.ModeCharDevice == 0:
		if d.size, err = f.Seek(0, io.SeekEnd); err != nil {
			f.Close()
			return nil, fmt.Errorf("size of block device: %w", err)
		}
	default:
		f.Close()
		return nil, fmt.Errorf("%v is neither a regular file nor a block device: %w", fi.Mode().Type(), ErrInvalid)
	}
	if flags&(os.O_WRONLY|os.O_RDWR) != 0 {
		if d.meta, err = os.OpenFile(path, flags|unix.O_DSYNC, 0); err != nil {
			f.Close()
			return nil, err
		}
	}
	return d, nil
}

func (d *fileDrive) ReadAt(p []byte, off int64) (int, error)  { return d.f.ReadAt(p, off) }
func (d *fileDrive) WriteAt(p []byte, off int64) (int, error) { return d.f.WriteAt(p, off) }
func (d *fileDrive) Size() int64                              { return d.size }
func (d *fileDrive) Flush() error                             { return d.f.Sync() }

func (d *fileDrive) Close() error {
	err := d.f.Close()
	if d.meta != nil {
		if merr := d.meta.Close(); err == nil {
			err = merr
		}
	}
	return err
}

func (d *fileDrive) WriteMeta(b []byte, off int64) error {
	if d.meta == nil {
		return fmt.Errorf("write metadata: drive opened read-only: %w", ErrInvalid)
	}
	_, err := d.meta.WriteAt(b, off)
	return err
}

func (d *fileDrive) Sync() error {
	return d.control(func(fd int) error { return unix.Fdatasync(fd) })
}

func (d *fileDrive) control(fn func(fd int) error) error {
	rc, err := d.f.SyscallConn()
	if err != nil {
		return err
	}
	var opErr error
	if err := rc.Control(func(fd uintptr) { opErr = fn(int(fd)) }); err != nil {
		return err
	}
	return opErr
}

func (d *fileDrive) Zero(off, n int64) error {
	if n <= 0 {
		return nil
	}
	var err error
	if d.block {
		r := [2]uint64{uint64(off), uint64(n)}
		err = d.control(func(fd int) error {
			_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.BLKZEROOUT, uintptr(unsafe.Pointer(&r)))
			if e != 0 {
				return e
			}
			return nil
		})
	} else {
		err = d.control(func(fd int) error {
			return unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
		})
		if errors.Is(err, unix.EOPNOTSUPP) {
			err = d.control(func(fd int) error {
				return unix.Fallocate(fd, unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_KEEP_SIZE, off, n)
			})
		}
	}
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) {
		return writeZeros(d.f, off, n)
	}
	return err
}

func (d *fileDrive) Reserve(off, n int64) error {
	if d.block || n <= 0 {
		return nil
	}
	err := d.control(func(fd int) error { return unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, off, n) })
	if errors.Is(err, unix.EOPNOTSUPP) {
		return nil // the file system cannot reserve; writes will tell
	}
	return err
}

// writeZeros zeroes [off, off+n) with plain writes.
func writeZeros(w io.WriterAt, off, n int64) error {
	buf := make([]byte, min(n, 1<<20))
	for n > 0 {
		k := min(n, int64(len(buf)))
		if _, err := w.WriteAt(buf[:k], off); err != nil {
			return err
		}
		off += k
		n -= k
	}
	return nil
}
