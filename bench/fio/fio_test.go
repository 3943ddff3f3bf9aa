package fio_test

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/mvstack/mvstack/bench/fio"
)

func TestRunReadsTheJobsResult(t *testing.T) {
	if _, err := exec.LookPath("fio"); err != nil {
		t.Skip("needs fio (Debian package fio): apt-get install fio")
	}
	f := filepath.Join(t.TempDir(), "f")
	r, err := fio.Run(t.Context(), t.TempDir(), "--filename="+f, "--size=4m", "--rw=write", "--bs=64k")
	if err != nil {
		t.Fatal(err)
	}
	if r.BytesPerSec <= 0 || r.IOPS <= 0 {
		t.Errorf("writing 4 MiB: %+v, want throughput and IOPS above 0", r)
	}
	if _, err := fio.Run(t.Context(), "", "--rw=nonsense"); err == nil {
		t.Error("fio with a bad option: no error")
	}
}
