package agent_test

import "runtime"

func runtimeGosched() { runtime.Gosched() }
