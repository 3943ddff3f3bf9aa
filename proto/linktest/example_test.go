package linktest_test

import (
	"bytes"
	"fmt"

	"github.com/mvstack/mvstack/proto"
	"github.com/mvstack/mvstack/proto/linktest"
)

func Example() {
	sw := linktest.NewSwitch(linktest.Config{MTU: 9000})
	defer sw.Close()
	a := sw.Link(proto.MAC{0x02, 0, 0, 0, 0, 1}, proto.EtherTypeControl)
	b := sw.Link(proto.MAC{0x02, 0, 0, 0, 0, 2}, proto.EtherTypeControl)

	if err := a.WriteTo([]byte("hello"), b.Addr()); err != nil {
		fmt.Println(err)
		return
	}
	buf := make([]byte, b.MTU())
	n, src, dst, err := b.ReadFrom(buf)
	if err != nil {
		fmt.Println(err)
		return
	}
	// Short payloads arrive padded to the Ethernet minimum, as on a wire.
	fmt.Printf("%s -> %s: %q in %d bytes\n", src, dst, bytes.TrimRight(buf[:n], "\x00"), n)
	// Output: 02:00:00:00:00:01 -> 02:00:00:00:00:02: "hello" in 46 bytes
}

// A lossy, jittery segment that is the same in every run with the same seed.
func ExampleFaults() {
	sw := linktest.NewSwitch(linktest.Config{
		Hook: linktest.Faults{Loss: 0.05, Duplicate: 0.05, Reorder: 0.01, Seed: 1}.Hook(),
	})
	defer sw.Close()
	a := sw.Link(proto.MAC{0x02, 0, 0, 0, 0, 1}, proto.EtherTypeAoE)
	sw.Link(proto.MAC{0x02, 0, 0, 0, 0, 2}, proto.EtherTypeAoE)
	for range 1000 {
		a.WriteTo(make([]byte, 64), proto.Broadcast)
	}
	st := sw.Stats()
	fmt.Println("sent", st.Sent, "dropped", st.DroppedHook, "duplicated", st.Duplicated)
	// Output: sent 1000 dropped 52 duplicated 44
}
