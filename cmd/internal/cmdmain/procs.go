package cmdmain

import (
	"os"
	"runtime"
)

// AtLeastProcs raises GOMAXPROCS to n, for a server whose goroutines wait
// in blocking system calls (see target.Config.Procs). A GOMAXPROCS set in
// the environment is the operator's choice and is kept. It returns the
// setting in effect.
func AtLeastProcs(n int) int {
	cur := runtime.GOMAXPROCS(0)
	if os.Getenv("GOMAXPROCS") != "" || n <= cur {
		return cur
	}
	runtime.GOMAXPROCS(n)
	return n
}
