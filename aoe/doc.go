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
// [Frame] ties them together; its MarshalBinary pads every message to the
// 46-byte Ethernet minimum payload ([proto.MinPayload]) because aoetools
// drop shorter replies.
//
// Each type has MarshalBinary and UnmarshalBinary; decoders return
// io.ErrUnexpectedEOF on short input and never panic (they are fuzzed).
//
// The target (package aoe/target), the initiator (aoe/initiator), the NBD
// front end (aoe/nbd), ATA register definitions (aoe/ata) and the gopacket
// layer (aoe/aoepacket) live in sub-packages.
package aoe
