// Package initiator implements the initiator side of AoE r11: it discovers
// targets with broadcast Query Config, and reads and writes their sectors
// through a [Device] that is an io.ReaderAt and io.WriterAt.
//
// # Requests
//
// Every ATA request carries a tag; a reader goroutine per link matches
// replies to requests by tag. I/O is split into requests of as many sectors
// as one frame carries on the path ((MTU − 36) / 512, bounded by what the
// target advertises), and requests of one call are issued together.
//
// # Windows and retransmission
//
// Each path (one target MAC on one link) has a window that starts at one
// request and grows by slow start, then additively, up to the target's
// Buffer Count. The retransmission timeout comes from measured round trips
// (RFC 6298: smoothed RTT plus four deviations, samples only from requests
// sent once) with a floor and exponential backoff. A request overtaken by
// more replies than the path's learnt reordering is retransmitted at once
// (fast retransmit). A loss halves the window at most once per round trip,
// and the cut is undone when the first transmission is answered after all.
// A retransmission gets a new tag; a late reply to an older tag still
// completes the request.
//
// # Multipath
//
// A shelf.slot answered by several targets or over several links gets one
// path for each; new requests go to the path with the most room in its
// window, and a request that times out is retransmitted on another path
// when one is alive.
//
// # Epochs
//
// [Device.SetEpoch] registers the initiator at a replicated volume's epoch
// with every target of the device (mvstack's vendor command aoe.CmdEpoch).
// I/O a target refuses because a newer epoch exists fails with
// [ErrStaleEpoch], without retries. When a target no longer knows the
// initiator (it restarted), a device whose epoch is set registers again
// and retries the request once. A target out of space answers registered
// initiators with a vendor error that becomes [ErrNoSpace], which matches
// syscall.ENOSPC.
//
// # Errors
//
// ATA status and error bits and AoE error codes come back as an [*Error]
// that unwraps to a sentinel ([ErrOutOfRange], [ErrAborted], [ErrReserved],
// …) for errors.Is.
package initiator
