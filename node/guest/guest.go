package guest

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Markers the guest prints on its serial console.
const (
	// ReadyMarker is printed once init has set the guest up.
	ReadyMarker = "mvguest: ready"
	// NodesPrefix starts the line listing the guest's NUMA nodes, e.g.
	// "mvguest: nodes node0 node1".
	NodesPrefix = "mvguest: nodes"
	// DiskMarkerPrefix starts what the guest writes at offset 0 of
	// /dev/vda when asked (kernel argument mvguest.disk=WORD), followed by
	// WORD and a newline.
	DiskMarkerPrefix = "MVGUEST-DISK-MARK "
	// PoweredOffMarker is printed just before the guest powers off.
	PoweredOffMarker = "mvguest: power off"
)

// Kernel arguments the init script understands.
const (
	// ArgDisk asks the guest to write DiskMarkerPrefix+WORD to /dev/vda.
	ArgDisk = "mvguest.disk="
	// ArgPoweroff=1 makes the guest power off right after ReadyMarker.
	ArgPoweroff = "mvguest.poweroff="
)

// Cmdline returns the kernel command line for the guest: a serial console
// and the given extra arguments (e.g. ArgDisk+"hello").
func Cmdline(extra ...string) string {
	return strings.Join(append([]string{"console=ttyS0", "quiet", "panic=-1", "nokaslr"}, extra...), " ")
}

// Config says where the guest is built and from what.
type Config struct {
	// CacheDir holds built guests, one directory per package version.
	// Default: os.UserCacheDir()/mvstack/guest.
	CacheDir string
	// Package is the Debian kernel package, or the meta-package that
	// depends on it. Default: linux-image-amd64.
	Package string
	// Busybox is a statically linked busybox. Default: /bin/busybox
	// (Debian's busybox-static).
	Busybox string
	// Recheck is how long a built guest is used without asking apt
	// whether the kernel package has a newer version (apt-cache takes
	// seconds). 0 asks every time.
	Recheck time.Duration
	Logger  *slog.Logger
}

// DefaultConfig returns the defaults described on Config.
func DefaultConfig() Config {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return Config{CacheDir: filepath.Join(dir, "mvstack", "guest"), Package: "linux-image-amd64", Busybox: "/bin/busybox",
		Recheck: 24 * time.Hour}
}

// Validate checks the config.
func (c Config) Validate() error {
	if c.CacheDir == "" || c.Package == "" || c.Busybox == "" {
		return errors.New("guest: CacheDir, Package and Busybox must be set")
	}
	return nil
}

// Guest is a built guest: boot it with qemu -kernel Kernel -initrd Initrd
// (Kernel is an uncompressed ELF vmlinux, which QEMU's pc machine boots
// through PVH).
type Guest struct {
	Kernel string
	Initrd string
	// Version is the kernel package and version, e.g.
	// "linux-image-6.1.0-56-amd64 6.1.192-2".
	Version string
}

// ErrNeedRoot is returned when the guest is not cached and building it
// needs root (apt-get download writes apt's lists and partial files).
var ErrNeedRoot = errors.New("guest: building the test guest needs root (apt-get download): run as root")

// cacheLayout changes when what a cache directory holds changes.
const cacheLayout = "vmlinux+initrd.cpio v2"

// modules are loaded in this order (Debian builds virtio as modules;
// modules.dep is made at install time, so the order is written here).
var modules = []string{
	"drivers/virtio/virtio_ring.ko",
	"drivers/virtio/virtio.ko",
	"drivers/virtio/virtio_pci_modern_dev.ko",
	"drivers/virtio/virtio_pci_legacy_dev.ko",
	"drivers/virtio/virtio_pci.ko",
	"drivers/block/virtio_blk.ko",
	"net/core/failover.ko",
	"drivers/net/net_failover.ko",
	"drivers/net/virtio_net.ko",
	"drivers/acpi/button.ko",
	"drivers/input/evdev.ko",
}

// initScript is the guest's /init.
const initScript = `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /sbin /usr/bin /usr/sbin /tmp /root
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
for m in MODULES; do insmod /lib/modules/$m.ko 2>/dev/null; done
disk=; off=
for a in $(cat /proc/cmdline); do
	case $a in
	mvguest.disk=*) disk=${a#mvguest.disk=} ;;
	mvguest.poweroff=1) off=1 ;;
	esac
done
echo "mvguest: nodes $(ls /sys/devices/system/node | grep '^node' | tr '\n' ' ')"
echo "mvguest: cpus $(cat /sys/devices/system/cpu/online)"
if [ -n "$disk" ]; then
	i=0
	while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
	printf 'MVGUEST-DISK-MARK %s\n' "$disk" | dd of=/dev/vda conv=fsync 2>/dev/null && echo "mvguest: disk marker written"
fi
btn=
for e in /sys/class/input/event*; do
	[ "$(cat $e/device/name 2>/dev/null)" = "Power Button" ] && btn=/dev/input/${e##*/}
done
if [ -n "$btn" ] && [ -z "$off" ]; then
	# Listen for the power button before saying ready, so a press right
	# after the marker is not lost.
	head -c 24 $btn >/dev/null &
	hp=$!
	i=0
	while [ $i -lt 30 ] && ! ls -l /proc/$hp/fd 2>/dev/null | grep -q "$btn"; do sleep 0.1; i=$((i+1)); done
fi
echo "mvguest: ready"
if [ -n "$off" ]; then echo "mvguest: power off"; sync; poweroff -f; fi
if [ -n "$btn" ]; then wait $hp; echo "mvguest: power off"; sync; poweroff -f; fi
while true; do sleep 3600; done
`

// Build returns the cached guest for the current kernel package, building
// it first when needed: apt-get download of the kernel package (no
// install), dpkg-deb -x, the kernel decompressed out of its bzImage (an
// ELF vmlinux boots in a third of the time under TCG: no decompression in
// emulated code), the virtio modules copied out, and an initramfs written
// with static busybox and the /init script. Only apt downloads anything.
func Build(ctx context.Context, cfg Config) (Guest, error) {
	if err := cfg.Validate(); err != nil {
		return Guest{}, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	current := filepath.Join(cfg.CacheDir, cfg.Package+".current")
	if g, ok := recent(current, cfg.Recheck); ok {
		return g, nil
	}
	pkg, version, err := resolve(ctx, cfg.Package)
	if err != nil {
		return Guest{}, err
	}
	bb, err := os.ReadFile(cfg.Busybox)
	if err != nil {
		return Guest{}, fmt.Errorf("guest: busybox (apt busybox-static): %w", err)
	}
	sum := sha256.New()
	sum.Write(bb)
	sum.Write([]byte(initScript))
	sum.Write([]byte(strings.Join(modules, ",")))
	sum.Write([]byte(cacheLayout))
	key := fmt.Sprintf("%s_%s_%s", pkg, version, hex.EncodeToString(sum.Sum(nil))[:12])
	dir := filepath.Join(cfg.CacheDir, key)
	g := Guest{Kernel: filepath.Join(dir, "vmlinux"), Initrd: filepath.Join(dir, "initrd.cpio"), Version: pkg + " " + version}
	if exists(g.Kernel) && exists(g.Initrd) {
		remember(current, g)
		return g, nil
	}
	if os.Geteuid() != 0 {
		return Guest{}, ErrNeedRoot
	}
	log.Info("building test guest", "package", pkg, "version", version, "dir", dir)
	if err := os.MkdirAll(cfg.CacheDir, 0o755); err != nil {
		return Guest{}, fmt.Errorf("guest: %w", err)
	}
	tmp, err := os.MkdirTemp(cfg.CacheDir, ".build-")
	if err != nil {
		return Guest{}, fmt.Errorf("guest: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := run(ctx, tmp, "apt-get", "download", pkg+"="+version); err != nil {
		return Guest{}, err
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(debs) != 1 {
		return Guest{}, fmt.Errorf("guest: apt-get download %s left %d .deb files", pkg, len(debs))
	}
	root := filepath.Join(tmp, "root")
	if err := run(ctx, tmp, "dpkg-deb", "-x", debs[0], root); err != nil {
		return Guest{}, err
	}
	kernels, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	mods, _ := filepath.Glob(filepath.Join(root, "lib", "modules", "*"))
	if len(kernels) != 1 || len(mods) != 1 {
		return Guest{}, fmt.Errorf("guest: %s holds %d kernels and %d module trees, want 1 each", pkg, len(kernels), len(mods))
	}
	out := filepath.Join(tmp, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		return Guest{}, fmt.Errorf("guest: %w", err)
	}
	bz, err := os.ReadFile(kernels[0])
	if err != nil {
		return Guest{}, fmt.Errorf("guest: %w", err)
	}
	vmlinux, err := extractVmlinux(ctx, bz)
	if err != nil {
		return Guest{}, err
	}
	if err := os.WriteFile(filepath.Join(out, "vmlinux"), vmlinux, 0o644); err != nil {
		return Guest{}, fmt.Errorf("guest: %w", err)
	}
	initrd, err := initramfs(bb, filepath.Join(mods[0], "kernel"))
	if err != nil {
		return Guest{}, err
	}
	if err := os.WriteFile(filepath.Join(out, "initrd.cpio"), initrd, 0o644); err != nil {
		return Guest{}, fmt.Errorf("guest: %w", err)
	}
	if err := os.Rename(out, dir); err != nil && !exists(g.Kernel) { // a concurrent build may have won
		return Guest{}, fmt.Errorf("guest: %w", err)
	}
	remember(current, g)
	// Older builds of the same package (another version, script or
	// busybox) are dead weight: 70 MB each.
	olds, _ := filepath.Glob(filepath.Join(cfg.CacheDir, pkg+"_*"))
	for _, o := range olds {
		if o != dir {
			os.RemoveAll(o)
		}
	}
	return g, nil
}

// recent returns the guest recorded in current when the record is younger
// than maxAge and its files exist.
func recent(current string, maxAge time.Duration) (Guest, bool) {
	st, err := os.Stat(current)
	if err != nil || maxAge <= 0 || time.Since(st.ModTime()) > maxAge {
		return Guest{}, false
	}
	b, err := os.ReadFile(current)
	if err != nil {
		return Guest{}, false
	}
	f := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(f) != 3 || !exists(f[0]) || !exists(f[1]) {
		return Guest{}, false
	}
	return Guest{Kernel: f[0], Initrd: f[1], Version: f[2]}, true
}

// remember records g as the current guest (best effort).
func remember(current string, g Guest) {
	tmp := current + ".tmp"
	if os.WriteFile(tmp, []byte(g.Kernel+"\n"+g.Initrd+"\n"+g.Version+"\n"), 0o644) == nil {
		os.Rename(tmp, current)
	}
}

// initramfs returns the cpio archive: /init, /bin/busybox, /dev/console
// and the modules (flat in /lib/modules).
func initramfs(busybox []byte, kernelDir string) ([]byte, error) {
	var buf bytes.Buffer
	c := newCPIO(&buf)
	for _, d := range []string{"bin", "dev", "lib", "lib/modules", "proc", "sys"} {
		c.Dir(d)
	}
	c.CharDev("dev/console", 0o600, 5, 1)
	c.File("bin/busybox", 0o755, busybox)
	c.Symlink("bin/sh", "busybox")
	var names []string
	for _, m := range modules {
		b, err := os.ReadFile(filepath.Join(kernelDir, m))
		if err != nil {
			return nil, fmt.Errorf("guest: module: %w", err)
		}
		name := strings.TrimSuffix(filepath.Base(m), ".ko")
		names = append(names, name)
		c.File("lib/modules/"+name+".ko", 0o644, b)
	}
	c.File("init", 0o755, []byte(strings.Replace(initScript, "MODULES", strings.Join(names, " "), 1)))
	if err := c.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// resolve follows a meta-package to the kernel package it depends on and
// returns that package's candidate version.
func resolve(ctx context.Context, pkg string) (name, version string, err error) {
	name = pkg
	if !strings.HasPrefix(pkg, "linux-image-") || strings.Count(pkg, "-") < 4 { // a meta-package
		out, err := output(ctx, "apt-cache", "depends", pkg)
		if err != nil {
			return "", "", err
		}
		for l := range strings.Lines(out) {
			f := strings.Fields(l)
			if len(f) == 2 && f[0] == "Depends:" && strings.HasPrefix(f[1], "linux-image-") {
				name = f[1]
				break
			}
		}
	}
	out, err := output(ctx, "apt-cache", "policy", name)
	if err != nil {
		return "", "", err
	}
	for l := range strings.Lines(out) {
		f := strings.Fields(l)
		if len(f) == 2 && f[0] == "Candidate:" && f[1] != "(none)" {
			return name, f[1], nil
		}
	}
	return "", "", fmt.Errorf("guest: apt knows no candidate version of %s (apt-get update?)", name)
}

func output(ctx context.Context, name string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, name, args...).Output()
	if err != nil {
		return "", fmt.Errorf("guest: %s %s: %w", name, strings.Join(args, " "), err)
	}
	return string(out), nil
}

func run(ctx context.Context, dir, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("guest: %s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// extractVmlinux finds the compressed kernel inside a bzImage, as the
// kernel's scripts/extract-vmlinux does, and decompresses it: xz (Debian's
// choice) with the xz command, gzip with the standard library.
func extractVmlinux(ctx context.Context, bz []byte) ([]byte, error) {
	if i := bytes.Index(bz, []byte("\xfd7zXZ\x00")); i >= 0 {
		cmd := exec.CommandContext(ctx, "xz", "-dc", "--single-stream")
		cmd.Stdin = bytes.NewReader(bz[i:])
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil && len(out) == 0 {
			return nil, fmt.Errorf("guest: xz -dc of the kernel (apt xz-utils): %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
		}
		return checkELF(out)
	}
	if i := bytes.Index(bz, []byte("\x1f\x8b\x08\x00")); i >= 0 {
		zr, err := gzip.NewReader(bytes.NewReader(bz[i:]))
		if err != nil {
			return nil, fmt.Errorf("guest: kernel gzip stream: %w", err)
		}
		zr.Multistream(false)
		out, err := io.ReadAll(zr)
		if err != nil && len(out) == 0 {
			return nil, fmt.Errorf("guest: kernel gzip stream: %w", err)
		}
		return checkELF(out)
	}
	return nil, errors.New("guest: no xz or gzip stream in the kernel image")
}

func checkELF(b []byte) ([]byte, error) {
	if len(b) < 4 || string(b[:4]) != "\x7fELF" {
		return nil, errors.New("guest: the decompressed kernel is not an ELF vmlinux")
	}
	return b, nil
}
