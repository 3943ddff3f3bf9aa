// Package ata holds the parts of the ATA command set that AoE carries: command
// codes, the status and error register bits, and the 512-byte IDENTIFY
// DEVICE page ([Identity]) with the LBA48 words the Linux aoe driver reads
// (83, 86 and 100–103).
package ata
