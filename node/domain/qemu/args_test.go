package qemu

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mvstack/mvstack/node/domain"
	"github.com/mvstack/mvstack/proto"
)

func TestArgs(t *testing.T) {
	p := paths{Dir: "/run/q/dn5", QMP: "/run/q/dn5/qmp.sock", Console: "/run/q/dn5/console.log"}
	mac, _ := proto.ParseMAC("52:54:00:00:00:05")
	tests := []struct {
		desc  string
		spec  domain.Spec
		accel string
		want  []string
	}{
		{
			desc:  "2 vnodes, 2 sockets x 2 cores x 1 thread, NBD disk, tap, custom CPU",
			accel: AccelTCG,
			spec: domain.Spec{ID: 5, VCPUs: 4, Topology: domain.Topology{Sockets: 2, Cores: 2, Threads: 1}, Memory: 1 << 30,
				VNodes: domain.SplitVNodes(4, 1<<30, 2, []int{0, 1}), CPUMode: domain.CPUCustom, CPUModel: "Cascadelake-Server-noTSX",
				Disks: []domain.Disk{{NBD: "/run/mvnode/vol,1.sock"}, {File: "/srv/seed.img", ReadOnly: true}},
				NICs:  []domain.NIC{{MAC: mac, Tap: "tap5"}},
				Boot:  domain.Boot{Kernel: "/k", Initrd: "/i", Cmdline: "console=ttyS0"}},
			want: []string{
				"-name", "guest=dn5,debug-threads=on",
				"-machine", "pc,accel=tcg",
				"-nodefaults", "-no-user-config", "-display", "none", "-S",
				"-qmp", "unix:/run/q/dn5/qmp.sock,server=on,wait=off",
				"-serial", "file:/run/q/dn5/console.log",
				"-smp", "4,sockets=2,cores=2,threads=1",
				"-m", "1024M",
				"-cpu", "Cascadelake-Server-noTSX",
				"-object", "memory-backend-ram,id=ram0,size=512M,host-nodes=0,policy=bind", "-numa", "node,nodeid=0,memdev=ram0",
				"-object", "memory-backend-ram,id=ram1,size=512M,host-nodes=1,policy=bind", "-numa", "node,nodeid=1,memdev=ram1",
				"-numa", "cpu,node-id=0,socket-id=0,core-id=0,thread-id=0",
				"-numa", "cpu,node-id=0,socket-id=0,core-id=1,thread-id=0",
				"-numa", "cpu,node-id=1,socket-id=1,core-id=0,thread-id=0",
				"-numa", "cpu,node-id=1,socket-id=1,core-id=1,thread-id=0",
				"-drive", "file=nbd:unix:/run/mvnode/vol,,1.sock,format=raw,if=virtio,id=disk0",
				"-drive", "file=/srv/seed.img,format=raw,if=virtio,id=disk1,readonly=on",
				"-netdev", "tap,id=net0,ifname=tap5,script=no,downscript=no",
				"-device", "virtio-net-pci,netdev=net0,mac=52:54:00:00:00:05",
				"-kernel", "/k", "-initrd", "/i", "-append", "console=ttyS0",
			},
		},
		{
			desc:  "host-passthrough under KVM, threads",
			accel: AccelKVM,
			spec:  domain.Spec{ID: 5, VCPUs: 2, Topology: domain.Topology{Sockets: 1, Cores: 1, Threads: 2}, Memory: 256 << 20, CPUMode: domain.CPUHostPassthrough},
			want: []string{
				"-name", "guest=dn5,debug-threads=on",
				"-machine", "pc,accel=kvm",
				"-nodefaults", "-no-user-config", "-display", "none", "-S",
				"-qmp", "unix:/run/q/dn5/qmp.sock,server=on,wait=off",
				"-serial", "file:/run/q/dn5/console.log",
				"-smp", "2,sockets=1,cores=1,threads=2",
				"-m", "256M",
				"-cpu", "host",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			s := tt.spec.WithDefaults()
			if err := s.Validate(); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, commandLine(s, tt.accel, p, true)); diff != "" {
				t.Errorf("commandLine (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCPUModelUnderTCG(t *testing.T) {
	for mode, want := range map[domain.CPUMode]string{
		domain.CPUHostPassthrough: "max", domain.CPUHostModel: "max", domain.CPUNone: "",
	} {
		if got := cpuModel(domain.Spec{CPUMode: mode}, AccelTCG); got != want {
			t.Errorf("%s under TCG = %q, want %q", mode, got, want)
		}
	}
}

func TestParseCmdline(t *testing.T) {
	args := []string{"qemu-system-x86_64", "-name", "guest=legacy,debug-threads=on", "-smp", "2,sockets=2",
		"-m", "1G", "-qmp", "unix:/tmp/legacy.sock,server=on,wait=off", "-S"}
	want := domain.Wild{PID: 77, Name: "legacy", VCPUs: 2, Memory: 1 << 30, QMP: "/tmp/legacy.sock", Cmdline: args}
	if diff := cmp.Diff(want, ParseCmdline(77, args)); diff != "" {
		t.Errorf("ParseCmdline (-want +got):\n%s", diff)
	}
	w := ParseCmdline(1, []string{"qemu-system-x86_64", "-name", "plain", "-smp", "cpus=3", "-m", "512"})
	if w.Name != "plain" || w.VCPUs != 3 || w.Memory != 512<<20 || w.QMP != "" {
		t.Errorf("ParseCmdline plain = %+v", w)
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err == nil {
		t.Error("config without a ledger accepted")
	}
	cfg.Ledger = &domain.Ledger{}
	cfg.Accel = "hvf"
	if err := cfg.Validate(); err == nil {
		t.Error("accel hvf accepted")
	}
}
