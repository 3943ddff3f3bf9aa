// Command mvcontroller runs a replica of the mvstack controller (raft over
// TCP, REST API over HTTP) and manages its API tokens.
package main

import "github.com/mvstack/mvstack/cmd/internal/cmdmain"

func main() { cmdmain.Main("mvcontroller", run) }
