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
//     output and kills it when the test ends; [Process.WaitOutput] waits for
//     its "ready" line, [Process.Stop] ends it with SIGTERM. [Host.Command]
//     gives an exec.Cmd to run yourself, [Host.Run] runs one to completion.
//   - [Host.Do] runs Go code on a thread inside the namespace: sockets
//     opened there (proto.OpenPacketLink, mdlayher/packet) stay in it.
//   - [Lab.SetLoss] drops a share of the frames the bridge forwards,
//     [Lab.Partition] and [Lab.Heal] split and join groups of hosts,
//     [Lab.Block] cuts one direction only (all with nftables, Debian
//     package nftables), and [Lab.Cut] pulls a cable.
//   - [Lab.Capture] records the frames entering the bridge into a pcap file
//     (for tshark or gopacket/pcapgo), in-process through a mirror port.
//   - [Lab.Bridge] is the switch namespace as a Host, for tools that must
//     run next to the bridge.
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
//		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
//		defer cancel()
//
//		resp := b.Start(t, bin["mvctl"], "responder", "--iface", b.Iface)
//		if err := resp.WaitOutput(ctx, "listening"); err != nil {
//			t.Fatal(err)
//		}
//		if err := lab.SetLoss(5); err != nil {
//			t.Fatal(err)
//		}
//		out, err := a.Run(ctx, bin["mvctl"], "ping",
//			"--iface", a.Iface, "--mvmac", b.MAC.String())
//		if err != nil {
//			t.Fatal(err) // the error includes the output
//		}
//		_ = out // assert on what the user would read
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
// Goroutines that fn starts do not inherit the namespace; only fn's own
// thread is in it.
//
// Wait for a daemon's output with WaitOutput (it wakes on each write) or a
// bounded poll against the real process, never a bare sleep, and keep each
// test well under a minute: the whole `make test` shares two cores. The
// package's one TestMain (in lab_test.go) calls [Main]; do not add another.
package netns
