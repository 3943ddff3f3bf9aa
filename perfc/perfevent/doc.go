// Package perfevent counts a process's hardware and software events with
// Linux perf_event_open(2) and supplies them to a [perfc.Set] as a
// [perfc.Source]: the PMU counters of seed 003 §2.6.2 (cycles, instructions,
// cache references and misses, LLC misses, branch misses) and the kernel's
// software events (context switches, page faults, CPU migrations, task
// clock) for a domain's process.
//
// # Threads
//
// perf_event_open counts one thread. A [Process] opens every event on every
// thread of the process (/proc/PID/task) and re-scans the threads on each
// read: new threads get their events opened, and the final counts of
// threads that exited are kept, so a metric never goes down between resets.
// Work done by a thread that came and went between two reads is not seen;
// QEMU's vCPU and I/O threads live as long as the domain.
//
// # Unsupported and denied events
//
// An event the host cannot count (hardware events on a VM without a PMU:
// perf_event_open says ENOENT, ENODEV, EOPNOTSUPP or EINVAL) is reported
// with State [perfc.StateUnsupported], never as zero, and is logged once at
// debug level: it is a fact about the host, not an error. When the kernel
// refuses (EACCES, EPERM: /proc/sys/kernel/perf_event_paranoid above 1
// without CAP_PERFMON), Open retries counting user space only
// (exclude_kernel), which paranoid level 2 allows on one's own processes,
// and reports [perfc.StateDenied] if that is refused too. Root can count
// everything the host supports. Counts are scaled by time enabled over time
// running when the kernel multiplexes hardware counters.
//
// The metric names are perf.hw.* and perf.sw.*, listed in docs/perfc.md.
package perfevent
