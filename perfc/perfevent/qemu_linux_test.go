package perfevent

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/mvstack/mvstack/perfc"
)

// A real QEMU process stands for a domain: several threads (main loop, RCU,
// vCPU) that the domain's set counts together.
func TestQEMUDomainSoftwareEventsIncrease(t *testing.T) {
	bin, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("needs qemu-system-x86_64 (apt qemu-system-x86)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-M", "pc", "-m", "64", "-nodefaults", "-display", "none", "-no-reboot")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })

	var lb logBuf
	p := openOrFail(t, cmd.Process.Pid, &lb)
	set, err := perfc.NewSet(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := set.Child("dn1").Attach(p); err != nil {
		t.Fatal(err)
	}

	// Wait, with a bound, for QEMU to start its threads and run its guest
	// firmware: its task clock and page faults must rise between two dumps.
	first := set.Dump(perfc.Query{})
	var last perfc.Dump
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		last = set.Dump(perfc.Query{})
		tc0, _ := first.Find("dn1", "perf.sw.task_clock")
		tc1, _ := last.Find("dn1", "perf.sw.task_clock")
		pf1, _ := last.Find("dn1", "perf.sw.page_faults")
		if len(p.Threads()) >= 2 && tc1.Value > tc0.Value && pf1.Value > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: %d QEMU threads, dump %+v", len(p.Threads()), last)
		}
	}
	t.Logf("QEMU pid %d, threads %v", cmd.Process.Pid, p.Threads())
	for _, m := range last.Metrics {
		t.Logf("%s/%-26s %-12s %d %s", m.Domain, m.Name, m.State, m.Value, m.Unit)
		if m.Name == "perf.hw.cycles" && m.State == perfc.StateOK && m.Value == 0 {
			t.Error("this host has a PMU but QEMU ran no cycles")
		}
	}
	if cs, _ := last.Find("dn1", "perf.sw.context_switches"); kernelCounted(t) && cs.Value == 0 {
		t.Error("QEMU's threads never switched context")
	}
	lb.checkQuiet(t)
}
