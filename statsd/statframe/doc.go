// Package statframe implements the stat-frame codec of EtherType 0x88B6:
// the versioned TLV records a node pushes to the stats aggregator, one
// record type per metric group of seed 003 §2.6.1 (host, pCPU, NUMA node,
// CPU pool, domain, vCPU, domain memory, VIF, VBD), several per frame.
//
// # Wire format
//
// A frame's payload (what travels sealed inside a proto datagram, see
// proto.NewSealer) is a 12-byte header and then records:
//
//	off len
//	  0   1  version (1)
//	  1   1  flags, zero
//	  2   2  number of records
//	  4   8  sample time, Unix nanoseconds (signed)
//	 12   …  records, then zero padding
//
// Each record is type (1 byte), length of its value (2 bytes) and the value;
// all integers are big-endian and floats are IEEE 754 binary64. The layout
// of each value is in docs/statsd.md and on each record type.
//
// # Compatibility
//
// A decoder skips records of types it does not know and counts them
// ([Frame].Skipped), and ignores bytes past the fields it knows at the end
// of a known record, so a newer sender may add record types and append
// fields. A record shorter than its fields, a wrong record count, a set
// flag or non-zero bytes after the last record make the frame malformed.
//
// [Pack] fills frames up to a payload size (the link MTU less
// proto.DatagramOverhead).
package statframe
