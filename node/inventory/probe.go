package inventory

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"
	"github.com/prometheus/procfs/sysfs"

	"github.com/mvstack/mvstack/proto"
)

// Config says where to read the machine from and what the node declares.
type Config struct {
	// MAC is the management interface's address; the node id derives from it.
	MAC proto.MAC
	// Hypervisor is what the node's domain driver reports ("qemu-tcg",
	// "qemu-kvm", "sim").
	Hypervisor string
	Location   Location
	// DriveFiles are files standing in for drives (reported with kind
	// "file"); each must exist.
	DriveFiles []string
	// Sim, when set, declares the hardware instead of reading it.
	Sim *SimHardware
	// ProcPath and SysPath are the procfs and sysfs mount points.
	ProcPath, SysPath string
}

// DefaultConfig reads the running machine.
func DefaultConfig() Config { return Config{ProcPath: "/proc", SysPath: "/sys"} }

// ErrConfig marks a bad Config.
var ErrConfig = errors.New("inventory: bad config")

// Validate checks the fields.
func (c Config) Validate() error {
	if c.MAC.IsZero() || c.MAC.IsMulticast() {
		return fmt.Errorf("%w: MAC %s is not a unicast management address", ErrConfig, c.MAC)
	}
	if c.Sim != nil {
		return c.Sim.Validate()
	}
	if c.ProcPath == "" || c.SysPath == "" {
		return fmt.Errorf("%w: ProcPath and SysPath must be set", ErrConfig)
	}
	return nil
}

// Probe describes the machine: it reads /proc and /sys, or builds the
// declared hardware when cfg.Sim is set. Files in cfg.DriveFiles are added
// as drives either way.
func Probe(cfg Config) (*Inventory, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var inv *Inventory
	var err error
	if cfg.Sim != nil {
		inv, err = Simulated(cfg.MAC, *cfg.Sim, cfg.Location)
	} else {
		inv, err = probe(cfg)
	}
	if err != nil {
		return nil, err
	}
	if cfg.Hypervisor != "" {
		inv.Hypervisor = cfg.Hypervisor
	}
	for _, f := range cfg.DriveFiles {
		st, err := os.Stat(f)
		if err != nil {
			return nil, fmt.Errorf("inventory: drive file: %w", err)
		}
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("%w: drive file %s is not a regular file", ErrConfig, f)
		}
		inv.Disks = append(inv.Disks, Disk{Name: filepath.Base(f), Path: f, Size: uint64(st.Size()), Kind: "file"})
	}
	return inv, inv.Validate()
}

func probe(cfg Config) (*Inventory, error) {
	pfs, err := procfs.NewFS(cfg.ProcPath)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	sfs, err := sysfs.NewFS(cfg.SysPath)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	id := cfg.MAC.NodeID()
	inv := &Inventory{NodeID: id, MAC: cfg.MAC, Location: cfg.Location, Arch: machine()}
	inv.Hostname, _ = os.Hostname()

	mi, err := pfs.Meminfo()
	if err != nil {
		return nil, fmt.Errorf("inventory: meminfo: %w", err)
	}
	if mi.MemTotalBytes != nil {
		inv.Memory = *mi.MemTotalBytes
	} else if mi.MemTotal != nil {
		inv.Memory = *mi.MemTotal * 1024
	}

	if infos, err := pfs.CPUInfo(); err == nil && len(infos) > 0 {
		inv.CPU.Vendor, inv.CPU.Model, inv.CPU.MHz = infos[0].VendorID, infos[0].ModelName, infos[0].CPUMHz
		inv.CPU.Flags = slices.Clone(infos[0].Flags)
	}

	nodes, cpuNode, err := readNUMA(cfg.SysPath)
	if err != nil {
		return nil, err
	}
	cpus, err := sfs.CPUs()
	if err != nil {
		return nil, fmt.Errorf("inventory: cpus: %w", err)
	}
	sockets := map[int]bool{}
	physical := map[[2]int]bool{}
	for _, c := range cpus {
		n, err := strconv.Atoi(c.Number())
		if err != nil {
			continue
		}
		core := Core{ID: CoreID(id, n), Index: n, NUMANode: cpuNode[n], Siblings: []int{n}}
		if t, err := c.Topology(); err == nil {
			core.Socket, _ = strconv.Atoi(t.PhysicalPackageID)
			core.Core, _ = strconv.Atoi(t.CoreID)
			if s, err := ParseCPUList(t.ThreadSiblingsList); err == nil && len(s) > 0 {
				core.Siblings = s
			}
		}
		sockets[core.Socket] = true
		physical[[2]int{core.Socket, core.Core}] = true
		inv.Cores = append(inv.Cores, core)
	}
	sort.Slice(inv.Cores, func(i, j int) bool { return inv.Cores[i].Index < inv.Cores[j].Index })
	if len(nodes) == 0 { // a kernel without NUMA: one node holding everything
		n := NUMANode{ID: 0, Memory: inv.Memory, Distances: []int{10}}
		for _, c := range inv.Cores {
			n.CPUs = append(n.CPUs, c.Index)
		}
		nodes = []NUMANode{n}
	}
	if len(nodes) == 1 {
		// One node holds all memory; its meminfo can miss hot-plugged
		// memory (virtio-mem) that /proc/meminfo counts.
		nodes[0].Memory = inv.Memory
	}
	inv.NUMA = nodes
	inv.CPU.Sockets = len(sockets)
	if len(sockets) > 0 && len(physical) > 0 {
		inv.CPU.CoresPerSocket = len(physical) / len(sockets)
		inv.CPU.ThreadsPerCore = len(inv.Cores) / len(physical)
	}

	inv.Disks, err = readDisks(cfg.SysPath)
	if err != nil {
		return nil, err
	}
	inv.NICs, err = readNICs(sfs, cfg.SysPath)
	if err != nil {
		return nil, err
	}
	return inv, nil
}

// readNUMA reads /sys/devices/system/node/node*: CPU lists, distances and
// memory. It returns no nodes when the directory does not exist.
func readNUMA(sys string) ([]NUMANode, map[int]int, error) {
	dirs, _ := filepath.Glob(filepath.Join(sys, "devices/system/node/node[0-9]*"))
	cpuNode := map[int]int{}
	var nodes []NUMANode
	for _, d := range dirs {
		id, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), "node"))
		if err != nil {
			continue
		}
		n := NUMANode{ID: id}
		if b, err := os.ReadFile(filepath.Join(d, "cpulist")); err == nil {
			if n.CPUs, err = ParseCPUList(string(b)); err != nil {
				return nil, nil, fmt.Errorf("inventory: %s/cpulist: %w", d, err)
			}
		}
		for _, c := range n.CPUs {
			cpuNode[c] = id
		}
		if b, err := os.ReadFile(filepath.Join(d, "distance")); err == nil {
			for f := range strings.FieldsSeq(string(b)) {
				v, err := strconv.Atoi(f)
				if err != nil {
					return nil, nil, fmt.Errorf("inventory: %s/distance: %w", d, err)
				}
				n.Distances = append(n.Distances, v)
			}
		}
		if b, err := os.ReadFile(filepath.Join(d, "meminfo")); err == nil {
			n.Memory = nodeMemTotal(b)
		}
		nodes = append(nodes, n)
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].ID < nodes[j].ID })
	return nodes, cpuNode, nil
}

// nodeMemTotal finds "Node 0 MemTotal:  24684828 kB" in a node's meminfo.
func nodeMemTotal(b []byte) uint64 {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 4 && f[2] == "MemTotal:" {
			v, _ := strconv.ParseUint(f[3], 10, 64)
			return v * 1024
		}
	}
	return 0
}

// readDisks lists block devices with a device behind them (so loop, ram,
// zram and device-mapper nodes are left out).
func readDisks(sys string) ([]Disk, error) {
	ents, err := os.ReadDir(filepath.Join(sys, "block"))
	if err != nil {
		return nil, fmt.Errorf("inventory: block devices: %w", err)
	}
	var disks []Disk
	for _, e := range ents {
		name := e.Name()
		base := filepath.Join(sys, "block", name)
		if _, err := os.Stat(filepath.Join(base, "device")); err != nil {
			continue
		}
		d := Disk{Name: name, Path: "/dev/" + name, Kind: "hdd"}
		if s, err := readInt(filepath.Join(base, "size")); err == nil {
			d.Size = uint64(s) * 512
		}
		if b, err := os.ReadFile(filepath.Join(base, "device/model")); err == nil {
			d.Model = strings.TrimSpace(string(b))
		}
		rot, _ := readInt(filepath.Join(base, "queue/rotational"))
		switch {
		case strings.HasPrefix(name, "nvme"):
			d.Kind = "nvme"
		case strings.HasPrefix(name, "vd"):
			d.Kind = "virtio"
		case rot == 0:
			d.Kind = "ssd"
		}
		disks = append(disks, d)
	}
	return disks, nil
}

func readNICs(sfs sysfs.FS, sys string) ([]NIC, error) {
	names, err := sfs.NetClassDevices()
	if err != nil {
		return nil, fmt.Errorf("inventory: network interfaces: %w", err)
	}
	var nics []NIC
	for _, name := range names {
		if name == "lo" {
			continue
		}
		c, err := sfs.NetClassByIface(name)
		if err != nil {
			continue
		}
		n := NIC{Name: name}
		if m, err := proto.ParseMAC(c.Address); err == nil {
			n.MAC = m
		}
		if c.MTU != nil {
			n.MTU = int(*c.MTU)
		}
		if c.Speed != nil && *c.Speed > 0 {
			n.Speed = int(*c.Speed)
		}
		if _, err := os.Stat(filepath.Join(sys, "class/net", name, "device")); err != nil {
			n.Virtual = true
		}
		nics = append(nics, n)
	}
	sort.Slice(nics, func(i, j int) bool { return nics[i].Name < nics[j].Name })
	return nics, nil
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// ParseCPUList parses a Linux CPU list such as "0-3,8,10-11".
func ParseCPUList(s string) ([]int, error) {
	var out []int
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("cpu list %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return nil, fmt.Errorf("cpu list %q: %w", s, err)
			}
		}
		if b < a || a < 0 {
			return nil, fmt.Errorf("cpu list %q: bad range %q", s, part)
		}
		for i := a; i <= b; i++ {
			out = append(out, i)
		}
	}
	return out, nil
}

// FormatCPUList writes cpus (ascending) in the Linux list form "0-3,8".
func FormatCPUList(cpus []int) string {
	var b strings.Builder
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(cpus[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(cpus[j]))
		}
		i = j + 1
	}
	return b.String()
}
