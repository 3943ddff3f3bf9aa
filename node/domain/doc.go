// Package domain defines how a node runs guests (domains): the [Spec] of a
// domain, its life-cycle [State]s, the small [Driver] interface every
// hypervisor back end implements (package sim and package qemu), the
// optional abilities a driver may have (vCPU pinning, NUMA reports, console,
// stats, wild-domain scans), and the [Ledger] that holds the node's CPUs,
// memory and disks against its inventory.
//
// # Identities
//
// A domain has an integer id N and is named dnN. Its topology obeys the rule
// VCPU = SOCKETS × CORES × THREADS; [Spec.Validate] states the rule when it
// is broken.
//
// # Life cycle
//
//	Create → defined ─Start→ running ⇄ paused (Pause/Resume)
//	running ─Shutdown→ shutoff (the guest powers off)
//	running|paused ─Destroy→ shutoff (forced)
//	running ─Reboot→ running
//	running ─process dies unasked→ crashed
//	shutoff|crashed|defined ─Undefine→ gone (the ledger releases it)
//
// Drivers report every state change through the Notify callback in their
// config, at once; changes nobody asked for (a crash, a guest that powered
// itself off) carry a Reason.
//
// # NUMA
//
// [NUMAInfo] is what the MicroVisor console's "show numa" prints for a
// domain: its memory per host NUMA node in 4 KiB pages and, with vNUMA, the
// vnode layout with guest physical ranges. [FormatNUMA] reproduces that
// console layout. [Layout] computes the guest physical ranges the way
// QEMU's pc machine lays out RAM (a hole below 4 GiB), so what the node
// reports agrees with the guest's -numa configuration.
package domain
