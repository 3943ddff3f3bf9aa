package qemu

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// DetectAccel says whether KVM can run guests here, by trying: /dev/kvm
// must open, and the probe kernel must boot under accel=kvm and print
// marker on its serial console within 10 s. A kernel whose /dev/kvm only
// takes PVM guests passes the first test but never boots Linux, which is
// why opening the device is not enough. Without a probe kernel the answer
// is TCG, since nothing proved KVM works.
func DetectAccel(ctx context.Context, binary, kernel, initrd, marker string) string {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return AccelTCG
	}
	f.Close()
	if kernel == "" || marker == "" {
		return AccelTCG
	}
	dir, err := os.MkdirTemp("", "mvnode-kvm-probe-")
	if err != nil {
		return AccelTCG
	}
	defer os.RemoveAll(dir)
	console := filepath.Join(dir, "console.log")
	args := []string{"-machine", "pc,accel=kvm", "-m", "256M", "-nodefaults", "-no-user-config", "-display", "none",
		"-no-reboot", "-serial", "file:" + escape(console), "-kernel", kernel,
		"-append", "console=ttyS0 quiet panic=-1 mvguest.poweroff=1"}
	if initrd != "" {
		args = append(args, "-initrd", initrd)
	}
	cmd := exec.Command(binary, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return AccelTCG
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() { cmd.Process.Kill(); <-exited }()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, _ := os.ReadFile(console); bytes.Contains(b, []byte(marker)) {
			return AccelKVM
		}
		select {
		case <-exited:
			if b, _ := os.ReadFile(console); bytes.Contains(b, []byte(marker)) {
				return AccelKVM
			}
			return AccelTCG
		case <-ctx.Done():
			return AccelTCG
		case <-tick.C:
		}
	}
}
