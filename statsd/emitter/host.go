package emitter

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"
)

// hostReader reads the host's figures from proc and sysfs.
type hostReader struct {
	fs    procfs.FS
	sysfs string
}

type hostSample struct {
	cpus              []cpuSample
	numa              []numaSample
	memTotal, memFree uint64
	load              [3]float64
}

type cpuSample struct {
	id   uint16
	busy uint64 // ns of non-idle time since boot
}

type numaSample struct {
	id          uint16
	total, free uint64
}

func newHostReader(proc, sys string) (*hostReader, error) {
	fs, err := procfs.NewFS(proc)
	if err != nil {
		return nil, fmt.Errorf("emitter: procfs at %s: %w", proc, err)
	}
	return &hostReader{fs: fs, sysfs: sys}, nil
}

func (h *hostReader) read() (hostSample, error) {
	var s hostSample
	st, err := h.fs.Stat()
	if err != nil {
		return s, fmt.Errorf("emitter: %w", err)
	}
	ids := make([]int64, 0, len(st.CPU))
	for id := range st.CPU {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		c := st.CPU[id]
		busy := c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ + c.Steal
		s.cpus = append(s.cpus, cpuSample{id: u16(int(id)), busy: uint64(busy * 1e9)})
	}
	mi, err := h.fs.Meminfo()
	if err != nil {
		return s, fmt.Errorf("emitter: %w", err)
	}
	if mi.MemTotalBytes != nil {
		s.memTotal = *mi.MemTotalBytes
	}
	if mi.MemFreeBytes != nil {
		s.memFree = *mi.MemFreeBytes
	}
	la, err := h.fs.LoadAvg()
	if err != nil {
		return s, fmt.Errorf("emitter: %w", err)
	}
	s.load = [3]float64{la.Load1, la.Load5, la.Load15}
	s.numa = h.readNUMA()
	if len(s.numa) == 0 { // no NUMA in sysfs: the host is one node
		s.numa = []numaSample{{id: 0, total: s.memTotal, free: s.memFree}}
	}
	return s, nil
}

// readNUMA reads /sys/devices/system/node/node*/meminfo.
func (h *hostReader) readNUMA() []numaSample {
	dirs, _ := filepath.Glob(filepath.Join(h.sysfs, "devices/system/node/node[0-9]*"))
	var out []numaSample
	for _, d := range dirs {
		id, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), "node"))
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(d, "meminfo"))
		if err != nil {
			continue
		}
		n := numaSample{id: u16(id)}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			// "Node 0 MemTotal:       16318940 kB"
			f := strings.Fields(sc.Text())
			if len(f) < 4 {
				continue
			}
			v, err := strconv.ParseUint(f[3], 10, 64)
			if err != nil {
				continue
			}
			if len(f) > 4 && f[4] == "kB" {
				v *= 1024
			}
			switch f[2] {
			case "MemTotal:":
				n.total = v
			case "MemFree:":
				n.free = v
			}
		}
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b numaSample) int { return int(a.id) - int(b.id) })
	return out
}
