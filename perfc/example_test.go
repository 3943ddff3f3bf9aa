package perfc_test

import (
	"fmt"
	"os"

	"github.com/mvstack/mvstack/perfc"
)

func Example() {
	root, err := perfc.NewSet(nil)
	if err != nil {
		panic(err)
	}
	framesIn := root.Counter("proto.frames_in.control", "frames", "Control frames received")
	badMAC := root.Counter("proto.drops.bad_mac", "frames", "Control frames dropped: authentication failed")
	writes := root.Child("dn5").Counter("aoe.cmd.write", "commands", "AoE write commands issued")

	framesIn.Add(10)
	badMAC.Inc()
	writes.Add(3)

	// What PERFC_GET proto.drops returns, and what --perf-reset takes away.
	root.Dump(perfc.Query{Prefix: "proto.drops"}).WriteText(os.Stdout)
	taken := root.Reset(perfc.Query{})
	m, _ := taken.Find("dn5", "aoe.cmd.write")
	fmt.Println("reset took", m.Value, m.Unit, "from dn5; now", writes.Value())
	// Output:
	// -  proto.drops.bad_mac  1  frames  Control frames dropped: authentication failed
	// reset took 3 commands from dn5; now 0
}
