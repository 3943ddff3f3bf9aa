// Package qemu is the domain driver that runs each domain as a
// qemu-system-x86_64 process (Debian's qemu-system-x86): KVM when it
// proves usable ([DetectAccel]), TCG otherwise.
//
// # A domain's process
//
// The driver builds the command line: a pc machine started paused (-S), QMP on
// a unix socket in the domain's run directory, the serial console to a
// file there, -smp sockets,cores,threads, one memory backend and
// -numa node per vnode with -numa cpu mapping each vCPU, virtio disks from
// NBD unix sockets or raw files, virtio NICs on taps, and a direct kernel
// boot when the spec has one. On start the driver connects QMP (package
// node/qmp), reads the vCPU thread ids (query-cpus-fast), pins each thread
// with sched_setaffinity as the ledger says, then lets the guest run.
//
// # Stopping and crashes
//
// Shutdown presses the ACPI power button and waits for the guest to power
// off; Destroy sends quit and kills QEMU if it lingers. A process that
// exits without either (kill -9, a QEMU abort) makes the domain crashed,
// reported through Config.Notify as soon as the exit is seen.
//
// # Wild guests
//
// [Driver.Wild] lists QEMU processes on the host that the driver neither
// started nor imported; [Driver.Import] adopts one through its QMP socket
// and watches its exit with a pidfd.
package qemu
