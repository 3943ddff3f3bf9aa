// Package guest builds the tiny guest that tests and mvlab boot under QEMU:
// a Debian kernel (from the linux-image-*-amd64 package, fetched with
// apt-get download, never installed) and an initramfs holding a static
// busybox, the virtio modules and an /init script.
//
// # What the guest does
//
// /init mounts proc, sys and devtmpfs, loads the virtio, button and evdev
// modules, prints its NUMA nodes ("mvguest: nodes node0 node1") and online
// CPUs to the serial console, optionally writes a marker at the start of
// /dev/vda (kernel argument mvguest.disk=WORD), prints [ReadyMarker], and
// powers off at once (mvguest.poweroff=1) or when the ACPI power button is
// pressed (QMP system_powerdown).
//
// # Cache
//
// [Build] writes the kernel and initramfs under Config.CacheDir in a
// directory named for the kernel package, its version and a hash of the
// busybox binary and init script, and reuses it on later runs. Building
// needs root (apt-get download); a cached guest does not.
package guest
