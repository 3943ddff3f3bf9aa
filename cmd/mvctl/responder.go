package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/mvstack/mvstack/node/nodeclient"
	"github.com/mvstack/mvstack/proto"
)

func responderCommand() *cli.Command {
	return &cli.Command{
		Name:  "responder",
		Usage: "answer pings and discovery on an interface until interrupted (a stand-in node)",
		Flags: commonFlags(),
		Action: func(c *cli.Context) error {
			ep, iface, err := openEndpoint(c)
			if err != nil {
				return err
			}
			defer ep.Close()
			ep.Handle(nodeclient.MethodIdentify, func(ctx context.Context, r *proto.Request) ([]byte, error) {
				return []byte(ep.Addr().NodeID()), nil
			})
			proto.HandleTyped(ep, nodeclient.MethodDiscover, func(ctx context.Context, from proto.MAC, _ nodeclient.DiscoverRequest) (nodeclient.Summary, error) {
				return nodeclient.Summary{NodeID: ep.Addr().NodeID(), MAC: ep.Addr(), Hypervisor: "responder", Epoch: ep.Epoch()}, nil
			})
			fmt.Fprintf(c.App.Writer, "answering on %s as %s (node %s); interrupt to stop\n", iface, ep.Addr(), ep.Addr().NodeID())
			<-c.Context.Done()
			st := ep.Stats()
			fmt.Fprintf(c.App.Writer, "stopped: %d frames in, %d out, %d dropped\n", st.FramesIn, st.FramesOut, st.TotalDropped())
			return nil
		},
	}
}
