package target

import (
	"testing"

	"github.com/mvstack/mvstack/aoe"
	"github.com/mvstack/mvstack/aoe/ata"
	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/proto/linktest"
)

// FuzzHandle throws arbitrary frames at a server's request path: it must
// never panic and never touch bytes outside the export.
func FuzzHandle(f *testing.F) {
	for _, fr := range []aoe.Frame{
		ataReq(ata.CmdWriteSectorsExt, 126, 2, make([]byte, 1024)),
		ataReq(ata.CmdReadSectorsExt, 0, 17, nil),
		ataReq(ata.CmdIdentify, 0, 1, nil),
		{Header: aoe.Header{Shelf: 1, Slot: 2, Command: aoe.CmdConfig}, Config: aoe.ConfigArg{Cmd: aoe.ConfigSet, Config: []byte("a")}},
		{Header: aoe.Header{Shelf: 1, Slot: 2, Command: aoe.CmdMACMask}, MACMask: aoe.MACMaskArg{Cmd: aoe.MaskEdit, Directives: []aoe.Directive{{Cmd: aoe.DirAdd}}}},
		{Header: aoe.Header{Shelf: 1, Slot: 2, Command: aoe.CmdReserve}, Reserve: aoe.ReserveArg{Cmd: aoe.ReserveSet, MACs: []proto.MAC{clientMAC}}},
		{Header: aoe.Header{Shelf: 1, Slot: 2, Command: aoe.CmdEpoch}, Epoch: aoe.EpochArg{Op: aoe.EpochRegister, Epoch: 3}},
		{Header: aoe.Header{Shelf: 1, Slot: 3, Command: aoe.CmdEpoch}, Epoch: aoe.EpochArg{Op: aoe.EpochRegister, Epoch: 3}},
	} {
		fr.Version = 1
		b, _ := fr.MarshalBinary()
		f.Add(b)
	}
	sw := linktest.NewSwitch(linktest.Config{MTU: 9000, QueueLen: 1})
	defer sw.Close()
	g := newGuarded(64 << 10)
	fenced := newGuarded(64 << 10)
	ec := export(fenced)
	ec.Slot, ec.Epoch = 3, 2 // an export that keeps an epoch
	srv, err := NewServer(sw.Link(targetMAC, proto.EtherTypeAoE), Config{Workers: 1}, export(g), ec)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 9000 {
			b = b[:9000]
		}
		buf := <-srv.free
		n := copy(buf, b)
		switch j, fate := srv.handle(buf, n, clientMAC); fate {
		case serveHere, toDisk:
			srv.doATA(j)
		case answered:
			srv.free <- buf
		}
		if !g.guardsIntact() || !fenced.guardsIntact() {
			t.Fatalf("frame %x changed bytes outside the export", b)
		}
	})
}
