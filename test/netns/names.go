package netns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// Every namespace and temporary directory the harness makes is named
//
//	mvt-<pid>-<start>-<rest>
//
// where pid is the owning test process and start its start time in clock
// ticks since boot (field 22 of /proc/<pid>/stat). The pair names one process
// for the life of the machine even when pids are reused, so [Sweep] can tell
// a leftover of a dead run from the live namespaces of a parallel one.
const namePrefix = "mvt-"

// ownerRE matches the owner part of a harness name.
var ownerRE = regexp.MustCompile(`^mvt-([0-9]+)-([0-9]+)-`)

// owner identifies a test process: its pid and its start time.
type owner struct {
	pid   int
	start uint64
}

func (o owner) String() string { return fmt.Sprintf("%s%d-%d", namePrefix, o.pid, o.start) }

// self returns this process's owner tag; computed once because it never
// changes for the life of the process.
var self = sync.OnceValue(func() owner {
	start, err := startTime(os.Getpid())
	if err != nil {
		// /proc is always there on Linux; a zero start time still gives
		// unique names within this process, and Sweep then treats the
		// names as owned by whatever process has this pid.
		start = 0
	}
	return owner{pid: os.Getpid(), start: start}
})

// startTime reads the start time of process pid from /proc/<pid>/stat.
func startTime(pid int) (uint64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces;
	// the fields after the last ')' start with field 3.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("netns: /proc/%d/stat: no command field", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	const startField = 22 - 3
	if len(f) <= startField {
		return 0, fmt.Errorf("netns: /proc/%d/stat: %d fields, want more than 22", pid, len(f)+2)
	}
	return strconv.ParseUint(f[startField], 10, 64)
}

// parseOwner extracts the owner of a harness name; ok is false for names
// the harness did not make.
func parseOwner(name string) (o owner, ok bool) {
	m := ownerRE.FindStringSubmatch(name)
	if m == nil {
		return owner{}, false
	}
	pid, err1 := strconv.Atoi(m[1])
	start, err2 := strconv.ParseUint(m[2], 10, 64)
	if err1 != nil || err2 != nil || pid <= 0 {
		return owner{}, false
	}
	return owner{pid: pid, start: start}, true
}

// alive reports whether the process that owns a name still runs. When in
// doubt (an unreadable /proc entry) it says yes: Sweep must never remove a
// live run's namespaces.
func (o owner) alive() bool {
	start, err := startTime(o.pid)
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	if err != nil {
		return true
	}
	return o.start == 0 || start == o.start
}

// sanitize turns a test name into something safe and short for a
// namespace name: lower-case letters, digits and dots, at most max bytes.
func sanitize(s string, max int) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "."):
			b.WriteByte('.')
		}
		if b.Len() >= max {
			break
		}
	}
	return strings.Trim(b.String(), ".")
}
