// Command mvaoe serves files as AoE targets, finds AoE targets, and serves
// an AoE device to QEMU and the NBD tools.
package main

import "github.com/mvstack/mvstack/cmd/internal/cmdmain"

func main() { cmdmain.Main("mvaoe", run) }
