package ata

import (
	"encoding/binary"
	"fmt"
	"io"
	"strings"
)

// ATA commands a target understands.
const (
	CmdReadSectors     = 0x20
	CmdReadSectorsExt  = 0x24
	CmdWriteSectors    = 0x30
	CmdWriteSectorsExt = 0x34
	CmdCheckPowerMode  = 0xE5
	CmdFlushCache      = 0xE7
	CmdFlushCacheExt   = 0xEA
	CmdIdentify        = 0xEC
)

// Status register bits.
const (
	StatusBSY  = 0x80 // busy
	StatusDRDY = 0x40 // device ready
	StatusDF   = 0x20 // device fault
	StatusDRQ  = 0x08 // data request
	StatusERR  = 0x01 // error: see the error register
)

// Error register bits.
const (
	ErrUNC  = 0x40 // uncorrectable data error
	ErrIDNF = 0x10 // ID not found: address out of range
	ErrABRT = 0x04 // command aborted
)

// PowerActive is the CHECK POWER MODE sector count of an active device.
const PowerActive = 0xFF

// IdentityLen is the size of the IDENTIFY DEVICE page.
const IdentityLen = 512

// Identity is the information an IDENTIFY DEVICE page carries for AoE.
type Identity struct {
	Sectors    uint64 // capacity in 512-byte sectors
	Serial     string // up to 20 characters
	Firmware   string // up to 8 characters
	Model      string // up to 40 characters
	WriteCache bool   // a volatile write cache is enabled (FLUSH needed)
}

// Word offsets of the fields.
const (
	wSerial   = 10
	wFirmware = 23
	wModel    = 27
	wLBA28    = 60
	wCmdSet1  = 82
	wCmdSet2  = 83
	wCmdExt   = 84
	wEnabled1 = 85
	wEnabled2 = 86
	wEnabled3 = 87
	wLBA48    = 100
)

func putString(b []byte, word, words int, s string) {
	p := b[2*word : 2*(word+words)]
	for i := range p {
		p[i] = ' '
	}
	for i := 0; i < len(s) && i < len(p); i++ {
		// ATA strings put the first character of each pair in the high
		// byte of the little-endian word.
		p[i^1] = s[i]
	}
}

func getString(b []byte, word, words int) string {
	p := b[2*word : 2*(word+words)]
	out := make([]byte, len(p))
	for i := range p {
		out[i] = p[i^1]
	}
	return strings.TrimRight(string(out), " \x00")
}

// MarshalBinary builds the IDENTIFY DEVICE page: LBA and LBA48 supported
// and enabled, FLUSH CACHE (EXT) supported, the capacity in words 60–61
// (clamped to 28 bits) and 100–103, and a CHS geometry for old readers.
func (id Identity) MarshalBinary() ([]byte, error) {
	if len(id.Serial) > 20 || len(id.Firmware) > 8 || len(id.Model) > 40 {
		return nil, fmt.Errorf("ata: serial %q, firmware %q or model %q longer than 20/8/40 characters", id.Serial, id.Firmware, id.Model)
	}
	b := make([]byte, IdentityLen)
	w := func(i int, v uint16) { binary.LittleEndian.PutUint16(b[2*i:], v) }
	w(0, 0x0040) // fixed device
	cyl := id.Sectors / (16 * 63)
	w(1, uint16(min(cyl, 16383)))
	w(3, 16)
	w(6, 63)
	putString(b, wSerial, 10, id.Serial)
	putString(b, wFirmware, 4, id.Firmware)
	putString(b, wModel, 20, id.Model)
	w(47, 0x8001) // READ/WRITE MULTIPLE: one sector
	w(49, 0x0300) // LBA and DMA supported
	w(50, 0x4000) // word valid
	w(53, 0x0007) // words 54-58, 64-70 and 88 valid
	w(54, uint16(min(cyl, 16383)))
	w(55, 16)
	w(56, 63)
	lba28 := min(id.Sectors, 1<<28-1)
	chs := min(uint64(min(cyl, 16383))*16*63, lba28)
	binary.LittleEndian.PutUint32(b[2*57:], uint32(chs))
	binary.LittleEndian.PutUint32(b[2*wLBA28:], uint32(lba28))
	w(80, 0x00fe) // ATA/ATAPI-1 to -7
	var cache uint16
	if id.WriteCache {
		cache = 0x0020
	}
	w(wCmdSet1, 0x4000|cache)  // NOP supported, write cache
	w(wCmdSet2, 0x7400)        // word valid, FLUSH CACHE EXT, FLUSH CACHE, LBA48
	w(wCmdExt, 0x4000)         // word valid
	w(wEnabled1, 0x4000|cache) // write cache enabled
	w(wEnabled2, 0x3400)       // FLUSH CACHE EXT, FLUSH CACHE, LBA48 enabled
	w(wEnabled3, 0x4000)
	binary.LittleEndian.PutUint64(b[2*wLBA48:], id.Sectors)
	return b, nil
}

// UnmarshalBinary reads an IDENTIFY DEVICE page: the capacity from words
// 100–103 when word 83 says LBA48 is supported, else from words 60–61.
func (id *Identity) UnmarshalBinary(b []byte) error {
	if len(b) < IdentityLen {
		return io.ErrUnexpectedEOF
	}
	word := func(i int) uint16 { return binary.LittleEndian.Uint16(b[2*i:]) }
	if word(wCmdSet2)&0xc000 == 0x4000 && word(wCmdSet2)&0x0400 != 0 {
		id.Sectors = binary.LittleEndian.Uint64(b[2*wLBA48:]) & (1<<48 - 1)
	} else {
		id.Sectors = uint64(binary.LittleEndian.Uint32(b[2*wLBA28:]))
	}
	id.Serial = getString(b, wSerial, 10)
	id.Firmware = getString(b, wFirmware, 4)
	id.Model = getString(b, wModel, 20)
	id.WriteCache = word(wEnabled1)&0x0020 != 0 && word(wEnabled1)&0xc000 == 0x4000
	return nil
}
