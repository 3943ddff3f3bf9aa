// Package qmp is a small client for the QEMU Machine Protocol: JSON
// messages over QEMU's unix socket (-qmp unix:PATH,server=on,wait=off).
//
// [New] reads the greeting, enters command mode with qmp_capabilities and
// starts one reader goroutine that matches replies to commands by id and
// hands asynchronous events (SHUTDOWN, STOP, RESUME, RESET, …) to a
// callback in order. Typed helpers cover what the node's qemu driver needs:
// query-status, query-cpus-fast (vCPU thread ids for pinning),
// query-blockstats, system_powerdown, system_reset, stop, cont and quit;
// [Client.Execute] runs anything else.
package qmp
