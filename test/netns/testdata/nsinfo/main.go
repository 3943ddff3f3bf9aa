// Command nsinfo prints the name, hardware address and MTU of one network
// interface and then, with -wait, blocks until killed. The harness's tests
// build it with BuildBinaries and run it inside a namespace.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	iface := flag.String("iface", "eth0", "interface to describe")
	wait := flag.Bool("wait", false, "block until SIGTERM after printing")
	flag.Parse()
	ifi, err := net.InterfaceByName(*iface)
	if err != nil {
		fmt.Fprintln(os.Stderr, "nsinfo:", err)
		os.Exit(1)
	}
	fmt.Printf("iface=%s mac=%s mtu=%d\n", ifi.Name, ifi.HardwareAddr, ifi.MTU)
	if *wait {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		fmt.Println("waiting")
		<-c
		fmt.Println("terminated")
	}
}
