// Package state holds the controller's replicated state and the typed,
// versioned commands that change it.
//
// # Determinism
//
// [State.Apply] is the raft FSM's transition function: given the same state
// and the same command bytes it produces the same state and result on every
// replica. Commands therefore carry everything they need, including the time
// stamp the proposer chose; Apply never reads the clock, random numbers or
// map iteration order.
//
// # Encoding
//
// A command is a version byte ([CommandVersion]), a type byte ([CommandType])
// and a CBOR body (fxamacker/cbor, core deterministic encoding). Unknown
// versions, unknown types, unknown fields and trailing bytes are rejected with
// [ErrUnknownVersion], [ErrUnknownCommand] or [ErrMalformed]. A snapshot is a
// version byte followed by the CBOR of the whole state; restoring one
// replaces the state.
//
// # Host states
//
// A node's operator-chosen mode ([Node.Admin]: enabled, disabled, offline,
// flush) and its monitored health ([Node.Health]: ok, error, retry) combine
// into the state seed 000 shows ([Node.State]). See [CheckAdminTransition]
// and [CheckHealthTransition] for the rules.
//
// # Storage
//
// Disks come from the nodes' inventories, named by [DiskID] (FNV-1a 32 of
// "<node>/<name>", decimal). [Datastore]s pool disks with a replica count,
// overcommit, thick/thin and repair policy; [Volume]s are placed by package
// controller/storage while the command is applied, so every replica places
// alike. A volume's epoch and in-sync set live here: [SetVolumeEpoch] raises
// the epoch (fencing), [SetInSync] changes the set only at the epoch the
// proposer saw and raises it. Invalid storage commands return a
// [FieldError] naming the field, wrapping [ErrInvalid]. See docs/storage.md.
package state
