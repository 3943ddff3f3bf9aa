// Package target implements an AoE r11 target: it serves backends (regular
// files, sparse files, block devices) at shelf.slot addresses on a
// [proto.Link], as vblade does, with many requests in flight.
//
// # Exports
//
// A [Server] reads frames from one link and answers for every [Export] it
// holds. An export answers ATA commands (IDENTIFY, READ/WRITE SECTORS and
// their EXT forms, FLUSH CACHE (EXT), CHECK POWER MODE; any other ATA
// command is aborted), Query Config with its five sub-commands, MAC Mask
// List and Reserve/Release. On start the server broadcasts a Query Config
// response for each export so initiators learn of it at once.
//
// Exports may be added and removed while the server runs
// ([Server.AddExport], [Server.RemoveExport]); a server may start with
// none. The export table is copy-on-write behind an atomic pointer.
//
// # Epochs and ENOSPC (mvstack vendor extensions)
//
// An export configured with Epoch > 0 keeps a current epoch for a
// replicated volume. Initiators register at an epoch with the vendor
// command aoe.CmdEpoch; registering at a newer epoch raises the export's
// (after ExportConfig.OnEpoch persisted it, and after every request
// admitted at an older epoch finished). ATA reads, writes and flushes from
// a MAC not registered at the current epoch are refused with the vendor
// errors aoe.ErrEpochUnregistered or aoe.ErrEpochStale and never reach the
// backend. With Epoch 0 the export is a standard AoE target. A write that
// fails with ENOSPC answers registered initiators aoe.ErrNoSpace and
// everyone else ATA ABRT.
//
// # Concurrency
//
// The reader hands writes, flushes and O_DIRECT reads to a pool of workers
// that do positioned I/O (pread/pwrite) in parallel, so an export advertises
// a Buffer Count of 64 or more and means it; reads from a page-cached
// backend, and write-back writes to one, it serves itself, saving a
// hand-off (a page-cached [File] is also mapped read-only, so those reads
// are copies without a system call). Requests that overlap a write
// run in arrival order. Disk requests of one read batch that follow one
// another (a large I/O split into frames) are joined into one backend
// call. On a batching link the reader serves one disk request of a batch
// itself when a standby goroutine is waiting to take over the reading,
// which spares that request a worker's wake-up. Each request buffer is
// reused for its reply.
//
// # Durability
//
// A write is acknowledged only after it is durable: the worker writes, then
// joins a group commit that calls the backend's Sync (fdatasync for files)
// once for all writes that finished meanwhile. An export configured
// write-back acknowledges after the write alone; FLUSH CACHE always syncs.
//
// # Bad input
//
// Frames that do not decode are dropped and counted; a request past the end
// gets ATA IDNF; a sector count above the frame limit gets AoE error 2
// (bad argument); a write to a read-only export is aborted (ABRT); a source
// outside a non-empty MAC mask list gets no answer at all; a source not on a
// non-empty reserve list gets AoE error 6 for ATA and for commands that
// change state. No request ever reads or writes outside [0, Size).
package target
