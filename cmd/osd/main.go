// Command osd is the mvstack controller's command-line client, mirroring the
// MicroVisor osd CLI: get_nodes, get_node, set_node_state, get_cluster, …
package main

import "github.com/mvstack/mvstack/cmd/internal/cmdmain"

func main() { cmdmain.Main("osd", run) }
