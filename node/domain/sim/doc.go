// Package sim is a domain driver whose guests are bookkeeping only: a
// domain holds its vCPUs, memory and disks in the node's ledger, honours
// pinning and NUMA placement, writes a console, and produces plausible,
// consistent stats (counters that only grow) from an injected clock. No
// goroutine or process stands behind a domain, so one process holds
// hundreds of them.
package sim
