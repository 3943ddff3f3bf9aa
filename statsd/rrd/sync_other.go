//go:build !linux

package rrd

import (
	"fmt"
	"os"
	"syscall"
)

// syncFS has no single-call form here: it falls back to sync(2).
func syncFS(f *os.File) error {
	syscall.Sync()
	if f == nil {
		return fmt.Errorf("rrd: sync: no file")
	}
	return nil
}

func fdatasync(f *os.File) error { return f.Sync() }

func willNeed(*os.File) {}
