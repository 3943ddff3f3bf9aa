// Package netns is the integration-test harness: it builds small
// Ethernet networks of Linux network namespaces ("labs") on which mvstack's
// real binaries and real AF_PACKET sockets run, and removes them afterwards.
//
// # A lab
//
// [New] makes one "switch" namespace holding a bridge (STP off, forwarding
// delay 0) and Config.Hosts host namespaces, each cabled to the bridge by a
// veth pair whose host end is eth0. Nothing is made in the root namespace.
// Names carry the test process's pid and start time, so parallel runs never
// collide and [Sweep] (called by New) removes leftovers of dead runs. Labs
// are removed by t.Cleanup, and also when the test process gets SIGINT,
// SIGTERM or SIGHUP. Everything needs root; tests skip with the reason
// otherwise ([RequireRoot]).
//
// On a lab:
//   - [Host.Start] runs a program inside a host namespace, captures its
//     output and kills it when the test ends; [Host.Command] gives an
//     exec.Cmd to run yourself.
//   - [Host.Do] runs Go code on a thread inside the namespace: sockets
//     opened there (proto.OpenPacketLink, mdlayher/packet) stay in it.
//   - [Lab.SetLoss] drops a share of the frames the bridge forwards,
//     [Lab.Partition] and [Lab.Heal] split and join groups of hosts (both
//     with nftables, Debian package nftables), [Lab.Cut] pulls a cable.
//   - [BuildBinaries] builds the project's commands once per test process.
//
// # Writing an integration test
//
// Integration tests are files in test/netns named for their area
// (aoe_test.go, proto_test.go, ...), in package netns_test:
//
//	func TestPingOverVeth(t *testing.T) {
//		lab := netns.New(t, netns.Config{Hosts: 2, MTU: 9000})
//		bin := netns.BuildBinaries(t, "./cmd/mvctl")
//		a, b := lab.Hosts[0], lab.Hosts[1]
//		b.Start(t, bin["mvctl"], "responder", "--iface", b.Iface)
//
//		if err := lab.SetLoss(5); err != nil {
//			t.Fatal(err)
//		}
//		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
//		defer cancel()
//		out, err := a.Command(ctx, bin["mvctl"], "ping",
//			"--iface", a.Iface, "--mvmac", b.MAC.String()).CombinedOutput()
//		if err != nil {
//			t.Fatalf("mvctl ping: %v\n%s", err, out)
//		}
//	}
//
// In-process, open a link inside a namespace with Do and use it from any
// goroutine afterwards:
//
//	var link *proto.PacketLink
//	err := a.Do(func() (err error) {
//		link, err = proto.OpenPacketLink(a.Iface, proto.EtherTypeControl, nil)
//		return err
//	})
//
// Wait for a daemon with a bounded poll against the real process (a
// deadline, never a bare sleep), and keep each test well under a minute:
// the whole `make test` shares two cores.
package netns
