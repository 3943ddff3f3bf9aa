// Command mvstatsd is the stats aggregator: it receives stat frames
// (EtherType 0x88B6) from the nodes, stores them as round-robin databases,
// and serves them over HTTP (JSON, PNG/SVG graphs, Prometheus /metrics).
// `mvstatsd rrd` works on the files with rrdtool's commands and syntax.
package main

import "github.com/mvstack/mvstack/cmd/internal/cmdmain"

func main() { cmdmain.Main("mvstatsd", run) }
