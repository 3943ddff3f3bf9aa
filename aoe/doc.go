// Package aoe implements the wire format of ATA over Ethernet, revision 11
// (Coraid AoEr11, EtherType 0x88A2), byte-compatible with the Linux aoe
// driver, vblade, aoetools and Wireshark's dissector.
//
// # Frames
//
// Every AoE message starts with a 10-byte [Header] (version, flags, error,
// shelf, slot, command, tag) followed by one command argument:
// [ATAArg] and its data for command 0, [ConfigArg] for Query Config,
// [MACMaskArg] for MAC Mask List and [ReserveArg] for Reserve/Release.
// [EpochArg] for [CmdEpoch], mvstack's vendor command (0xF0) that
// registers initiators at a replicated volume's epoch.
// [Frame] ties them together; its MarshalBinary pads every message to the
// 46-byte Ethernet minimum payload ([proto.MinPayload]) because aoetools
// drop shorter replies.
//
// Each type has MarshalBinary and UnmarshalBinary; decoders return
// io.ErrUnexpectedEOF on short input and never panic (they are fuzzed).
//
// # Vendor extensions
//
// Management of replicated volumes never changes a standard field's
// meaning: it travels as the vendor command [CmdEpoch] (argument: magic
// "mv", version 1, op, status, 64-bit epoch) and as vendor error codes
// 0xF0–0xF2 in the header's Error field ([ErrEpochUnregistered],
// [ErrEpochStale], [ErrNoSpace]), which a target sends only to initiators
// that can have asked for them (see package aoe/target).
//
// The target (package aoe/target), the initiator (aoe/initiator), the NBD
// front end (aoe/nbd), ATA register definitions (aoe/ata) and the gopacket
// layer (aoe/aoepacket) live in sub-packages.
package aoe
