package rrd

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestXMLWithRRDTool checks both directions against the real rrdtool on
// generated sequences cut in two at an update on a whole second:
//
//   - our dump after the first half restores with `rrdtool restore`;
//     fetch on that file equals ours, and after both take the second
//     half they still agree;
//   - rrdtool's dump after the first half imports into ours; after the
//     second half our fetch equals rrdtool's on its own file.
func TestXMLWithRRDTool(t *testing.T) {
	o := newOracle(t)
	seed := *genSeed + 1
	rng := rand.New(rand.NewPCG(seed, 77))
	const n = 250
	type job struct {
		s          *seq
		cut        int
		ours       *RRD // after the whole sequence
		oursCut    *RRD // after the first half
		first, all []fetchReq
	}
	var jobs []*job
	for i := 0; i < n; i++ {
		s := genSeq(rng, i)
		cut := 0
		for k := len(s.updates) / 2; k > 0; k-- {
			if !strings.Contains(s.updates[k-1].ts, ".") {
				cut = k
				break
			}
		}
		j := &job{s: s, cut: cut}
		full := *s
		full.fetches = nil
		r, _, _, err := full.runOurs()
		if err != nil {
			t.Fatal(err)
		}
		j.ours = r
		half := *s
		half.updates = s.updates[:cut]
		half.fetches = nil
		if j.oursCut, _, _, err = half.runOurs(); err != nil {
			t.Fatal(err)
		}
		j.first = fetchesFor(s.spec, s.start, j.oursCut.Last().Sec, nil)
		j.all = fetchesFor(s.spec, s.start, r.Last().Sec, nil)
		var buf bytes.Buffer
		if err := j.oursCut.DumpXML(&buf); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(o.path(fmt.Sprintf("o%d.xml", i)), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, j)
	}
	updates := func(fn string, us []upd) {
		for i := 0; i < len(us); i += 32 {
			line := []string{"update", fn}
			for _, u := range us[i:min(i+32, len(us))] {
				line = append(line, u.ts+":"+strings.Join(u.vals, ":"))
			}
			o.send(line...)
		}
	}
	fetches := func(fn string, fs []fetchReq) {
		for _, f := range fs {
			args := []string{"fetch", fn, f.cf.String(), "-s", strconv.FormatInt(f.start, 10), "-e", strconv.FormatInt(f.end, 10)}
			if f.res != 0 {
				args = append(args, "-r", strconv.FormatUint(f.res, 10))
			}
			o.send(args...)
		}
	}
	for i, j := range jobs {
		on, rn := fmt.Sprintf("o%d", i), fmt.Sprintf("r%d", i)
		o.send("restore", on+".xml", on+".rrd")
		fetches(on+".rrd", j.first)
		updates(on+".rrd", j.s.updates[j.cut:])
		fetches(on+".rrd", j.all)
		o.send("create", rn+".rrd", "--start", strconv.FormatInt(j.s.start, 10), "--step", strconv.FormatUint(j.s.spec.Step, 10), specArgs(j.s.spec))
		updates(rn+".rrd", j.s.updates[:j.cut])
		o.send("dump", rn+".rrd", rn+".xml")
		updates(rn+".rrd", j.s.updates[j.cut:])
		fetches(rn+".rrd", j.all)
	}
	nUpd := func(us []upd) int { return (len(us) + 31) / 32 }
	failed := 0
	for i, j := range jobs {
		fail := func(format string, a ...any) {
			failed++
			if failed <= 3 {
				t.Errorf("seed %d sequence %d (cut after %d updates): %s\n%s", seed, i, j.cut, fmt.Sprintf(format, a...), j.s)
			}
		}
		if _, e := o.reply(); e != "" {
			fail("rrdtool restore of our XML: %s", e)
		}
		check := func(what string, fs []fetchReq, ours *RRD) {
			for _, f := range fs {
				lines, e := o.reply()
				want, err := ours.Fetch(f.cf, f.start, f.end, f.res)
				if e != "" || err != nil {
					if (e != "") != (err != nil) {
						fail("%s: fetch %+v: rrdtool %q, ours %v", what, f, e, err)
					}
					continue
				}
				theirs, perr := parseFetch(lines)
				if perr != nil {
					fail("%s: %v", what, perr)
					continue
				}
				if err := compareFetch(want, theirs); err != nil {
					fail("%s: fetch %s -s %d -e %d -r %d: %v", what, f.cf, f.start, f.end, f.res, err)
				}
			}
		}
		check("restored from our XML", j.first, j.oursCut)
		for k := 0; k < nUpd(j.s.updates[j.cut:]); k++ {
			if _, e := o.reply(); e != "" {
				fail("rrdtool update after restore: %s", e)
			}
		}
		check("restored from our XML, then updated", j.all, j.ours)
		for k := 0; k < 1+nUpd(j.s.updates[:j.cut])+1+nUpd(j.s.updates[j.cut:]); k++ {
			if _, e := o.reply(); e != "" {
				fail("rrdtool create/update/dump: %s", e)
			}
		}
		// Import rrdtool's dump and continue with the second half.
		x, err := os.ReadFile(filepath.Join(o.dir, fmt.Sprintf("r%d.xml", i)))
		if err != nil {
			t.Fatal(err)
		}
		imp, err := RestoreXML(bytes.NewReader(x))
		if err != nil {
			fail("import of rrdtool's dump: %v", err)
			for range j.all {
				o.reply()
			}
			continue
		}
		for _, u := range j.s.updates[j.cut:] {
			ts, _ := strconv.ParseFloat(u.ts, 64)
			var vals []Value
			for _, v := range u.vals {
				pv, _ := ParseValue(v)
				vals = append(vals, pv)
			}
			if err := imp.UpdateUnix(ts, vals...); err != nil {
				fail("update after import: %v", err)
			}
		}
		check("imported from rrdtool's XML, then updated", j.all, imp)
	}
	if failed > 0 {
		t.Errorf("%d mismatches in %d sequences (seed %d)", failed, n, seed)
	}
}

func specArgs(s Spec) string {
	var parts []string
	for _, d := range s.DS {
		parts = append(parts, d.String())
	}
	for _, a := range s.RRA {
		parts = append(parts, a.String())
	}
	return strings.Join(parts, " ")
}

// TestXMLRoundTrip: our dump imports back to the same RRD.
func TestXMLRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 50; i++ {
		s := genSeq(rng, i)
		s.fetches = nil
		r, _, _, err := s.runOurs()
		if err != nil {
			t.Fatal(err)
		}
		var a, b bytes.Buffer
		if err := r.DumpXML(&a); err != nil {
			t.Fatal(err)
		}
		back, err := RestoreXML(bytes.NewReader(a.Bytes()))
		if err != nil {
			t.Fatalf("sequence %d: %v", i, err)
		}
		if err := back.DumpXML(&b); err != nil {
			t.Fatal(err)
		}
		if a.String() != b.String() {
			t.Fatalf("sequence %d: dump → restore → dump differs", i)
		}
	}
}
