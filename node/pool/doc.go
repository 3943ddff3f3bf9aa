// Package pool implements a thin-provisioning pool on one drive (a block
// device, or a regular file standing in for one): a node's drive holds many
// volumes, each a [Volume] that aoe/target serves as a Backend.
//
// # Use
//
// [Format] writes an empty pool onto a drive; it takes only a blank drive
// (first 64 KiB zero, see [IsBlank]) unless FormatOptions.Force. [Open]
// opens, validates and, after a crash, repairs one. [Pool.Create] makes a
// volume: thin volumes take a chunk (1 MiB by default) on the first write
// to it, thick ones take all their chunks at once. Volumes may together be
// larger than the pool (overcommit); a write that needs a chunk when none is
// free fails with an error matching syscall.ENOSPC, writes nothing and
// touches no other volume. [Pool.Delete] zeroes and frees a volume's chunks,
// [Pool.Resize] grows a volume, [Volume.Discard] frees whole chunks of a
// thin volume (NBD TRIM). Each volume keeps two values for the node's AoE
// export across restarts: its epoch (fence level) and whether it is in
// sync; setting either is durable when the call returns.
//
// Volume ids are 1 to 128 bytes of UTF-8 without spaces or control
// characters. Sizes are positive multiples of 512. Bad input fails with
// ErrInvalid or ErrRange and an error naming the value; nothing changes.
// A read reaching past a volume's end returns what there is and io.EOF, as
// io.ReaderAt says; a write reaching past it fails with ErrRange and writes
// nothing.
//
// # Memory
//
// An open pool keeps its chunk table in memory (16 bytes per chunk: 160 MB
// for 10 TiB of 1 MiB chunks; larger chunks for larger drives), and each
// volume a map of 4 bytes per chunk, in pages made on first use, so a large
// thin volume costs little until it is written.
//
// # Concurrency
//
// Everything is safe for concurrent use. Reads and writes of a volume hold
// its lock shared and do positioned I/O (pread/pwrite) on the drive, so they
// run in parallel. The first write to a chunk allocates it: allocations
// are a group commit, so writers needing chunks while a table write is
// under way share the next one. Delete, Resize, Discard and Close wait for
// the volume's I/O in flight.
//
// # On-disk layout
//
// All metadata blocks are 4 KiB and begin with a 32-byte header: magic
// "MVPL", block type, format version (1), a CRC-32C of the block, a
// sequence number and the block's index in its table. A block of zeros is
// a valid empty block. Integers are little-endian.
//
//	offset 0       superblock, copy 0
//	offset 4096    superblock, copy 1 (identical)
//	offset 8192    volume table: MaxVolumes slots × 2 copies × 4 KiB
//	               (state, thick/in-sync flags, serial, size, epoch, id)
//	then           chunk table: ⌈chunks/254⌉ blocks × 2 copies × 4 KiB,
//	               254 entries of 16 bytes each: owner serial (0 free),
//	               logical chunk of the owner
//	aligned to     data: chunk i at DataOff + i×ChunkSize
//	the chunk size
//
// The superblock holds the pool's UUID, chunk size, chunk count and volume
// slots, and the table offsets, which Open recomputes and compares. Each
// volume has a serial unique in the pool; chunk entries name it, so an
// entry left by an older volume in the same slot can never be confused
// with the new one.
//
// # Crash safety
//
// Table blocks are updated in place with two copies each: version s of a
// block goes to copy s mod 2, so the other copy keeps the previous version.
// Metadata is written through a second descriptor opened O_DSYNC, so each
// block is durable when its write returns (and only its own range is
// flushed, not the volumes' data written before it); the next version of
// a block therefore never overwrites the only durable one. Open takes, per
// block, the sound copy (checksum, magic, type, index, copy parity) with
// the higher sequence number. A torn or lost write loses only the change
// being made, never an older one, and garbage is caught by the CRC.
// Changes that touch several blocks are ordered so that every prefix is a
// state Open accepts:
//
//   - Allocation (first write to a chunk): the chunk's table entry is
//     durable before the data goes to the chunk. A chunk that holds data is
//     therefore always owned on disk; a crash loses at most the allocation
//     of a write that was not yet acknowledged.
//   - Freeing (Delete, Discard, recovery): the chunks are zeroed (hole
//     punching on files, BLKZEROOUT on block devices, explicit zeros where
//     neither works) and that is made durable (fsync) before their entries
//     say free. So a free chunk always reads as zeros, and the data of a
//     deleted volume can never show through another volume.
//   - Delete: the record is marked deleting, the chunks freed as above,
//     then the record freed. Open finishes a delete it finds.
//   - Thick Create: the record is marked creating, the chunks taken and
//     reserved in the file system (fallocate), then the record made
//     active. Open rolls back a create it finds.
//   - Thick Resize: the new chunks are taken first, past the volume's end;
//     then the record grows. Open frees chunks past a thick volume's end.
//   - Format zeroes the pool area and writes the superblocks last.
//
// Data written by WriteAt is durable once Sync (fdatasync) returns; the
// metadata it needs was durable before the write. Open refuses, with
// ErrCorrupt naming the block, states no crash can produce: both copies of
// a block damaged, a chunk owned by no volume or twice, a thin volume's
// chunk past its end, a thick volume missing chunks. A metadata write that
// fails leaves the pool refusing further changes until it is opened again;
// I/O to allocated chunks goes on.
//
// The tests cut the power (an in-memory drive keeping any subset of the
// writes since the last flush, reordered and torn) before and during every
// drive operation of a random workload, and kill -9 a child process
// writing from several goroutines.
//
// A block that was durable and is later damaged by the medium falls back
// to its older copy; that is outside the crash model. The pool locks its
// drive with flock so that two processes never open it at once, and opens a
// block device O_EXCL, so that a mounted or otherwise claimed drive is
// refused with ErrBusy instead of formatted.
package pool
