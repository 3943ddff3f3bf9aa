// Package inventory describes a node's hardware: its identity (the node id
// from the management MAC), cores with their NUMA node and thread siblings,
// NUMA distances, memory, disks, NICs, the CPU's vendor, model, clock and
// feature flags, the architecture, the hypervisor the node runs guests with,
// and where the node sits (rack, chassis, blade).
//
// # Sources
//
// [Probe] reads a real machine through /proc and /sys (prometheus/procfs
// where it parses the file, small readers where it does not). A simulated
// node declares its hardware instead ([SimHardware]): 2 sockets × 16 cores ×
// 2 threads, 256 GiB and 4 NVMe drives fit a whole rack on one machine.
//
// # Encoding
//
// [Inventory] and its parts marshal with CBOR (integer keys, for the control
// protocol) and JSON (for --json output). Core ids follow MicroVisor
// tooling: "<node>_<index>", e.g. "7a77f9af_4".
package inventory
