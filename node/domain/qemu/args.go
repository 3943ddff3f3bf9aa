package qemu

import (
	"fmt"
	"strings"

	"github.com/mvstack/mvstack/node/domain"
)

// Accelerators.
const (
	AccelTCG  = "tcg"
	AccelKVM  = "kvm"
	AccelAuto = "auto"
)

// Paths of one domain's files inside its run directory.
type paths struct {
	Dir     string // <RunDir>/dnN
	QMP     string // qmp.sock
	Console string // console.log (the serial port)
	Stderr  string // qemu.log
}

// escape doubles commas, QEMU's escape inside option values.
func escape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// cpuModel returns the -cpu argument for a CPU mode, or "" for QEMU's
// default. TCG cannot pass the host CPU through; "max" (every feature TCG
// emulates) is its closest.
func cpuModel(s domain.Spec, accel string) string {
	switch s.CPUMode {
	case domain.CPUHostPassthrough:
		if accel == AccelKVM {
			return "host"
		}
		return "max"
	case domain.CPUHostModel:
		if accel == AccelKVM {
			return "host,migratable=on"
		}
		return "max"
	case domain.CPUCustom:
		return s.CPUModel
	}
	return ""
}

// commandLine returns QEMU's command line (without the binary) for spec: a pc
// machine, started paused (-S) so the driver pins vCPUs before the guest
// runs, QMP on a unix socket, the serial port to a file, -smp with the
// topology, one memory backend and -numa node per vnode with -numa cpu
// entries mapping each vCPU's socket/core/thread, disks on virtio (NBD
// unix sockets or raw files) and NICs on taps. With bind, each vnode's
// memory is bound to its host NUMA node (host-nodes=PNODE,policy=bind).
func commandLine(s domain.Spec, accel string, p paths, bind bool) []string {
	t := s.Topology
	mib := s.Memory / domain.MiB
	a := []string{
		"-name", fmt.Sprintf("guest=%s,debug-threads=on", s.Name()),
		"-machine", "pc,accel=" + accel,
		"-nodefaults", "-no-user-config", "-display", "none", "-S",
		"-qmp", "unix:" + escape(p.QMP) + ",server=on,wait=off",
		"-serial", "file:" + escape(p.Console),
		"-smp", fmt.Sprintf("%d,sockets=%d,cores=%d,threads=%d", s.VCPUs, t.Sockets, t.Cores, t.Threads),
		"-m", fmt.Sprintf("%dM", mib),
	}
	if m := cpuModel(s, accel); m != "" {
		a = append(a, "-cpu", m)
	}
	for i, v := range s.VNodes {
		backend := fmt.Sprintf("memory-backend-ram,id=ram%d,size=%dM", i, v.Memory/domain.MiB)
		if bind {
			backend += fmt.Sprintf(",host-nodes=%d,policy=bind", v.PNode)
		}
		a = append(a, "-object", backend, "-numa", fmt.Sprintf("node,nodeid=%d,memdev=ram%d", i, i))
	}
	for i, v := range s.VNodes {
		for _, c := range v.VCPUs {
			sock := c / (t.Cores * t.Threads)
			core := (c / t.Threads) % t.Cores
			thr := c % t.Threads
			a = append(a, "-numa", fmt.Sprintf("cpu,node-id=%d,socket-id=%d,core-id=%d,thread-id=%d", i, sock, core, thr))
		}
	}
	for i, row := range s.Distances {
		for j, d := range row {
			if i != j {
				a = append(a, "-numa", fmt.Sprintf("dist,src=%d,dst=%d,val=%d", i, j, d))
			}
		}
	}
	for i, d := range s.Disks {
		file := escape(d.File)
		if d.NBD != "" {
			file = "nbd:unix:" + escape(d.NBD)
		}
		opt := fmt.Sprintf("file=%s,format=raw,if=virtio,id=disk%d", file, i)
		if d.ReadOnly {
			opt += ",readonly=on"
		}
		a = append(a, "-drive", opt)
	}
	for i, n := range s.NICs {
		tap := n.Tap
		if tap == "" {
			tap = fmt.Sprintf("%st%d", s.Name(), i)
		}
		a = append(a, "-netdev", fmt.Sprintf("tap,id=net%d,ifname=%s,script=no,downscript=no", i, escape(tap)),
			"-device", fmt.Sprintf("virtio-net-pci,netdev=net%d,mac=%s", i, n.MAC))
	}
	if b := s.Boot; b.Kernel != "" {
		a = append(a, "-kernel", b.Kernel)
		if b.Initrd != "" {
			a = append(a, "-initrd", b.Initrd)
		}
		if b.Cmdline != "" {
			a = append(a, "-append", b.Cmdline)
		}
	}
	return a
}
