package rrd

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// FuzzFileDecode feeds arbitrary file images to the decoder: it must
// never panic, and whatever opens must survive encode → decode unchanged.
func FuzzFileDecode(f *testing.F) {
	f.Add(sampleImage(f))
	f.Fuzz(func(t *testing.T, b []byte) {
		rf, err := openFile("fuzz.rrd", &memFile{b: append([]byte(nil), b...)})
		if err != nil {
			return
		}
		h := rf.hdr
		hb, err := h.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded header does not encode: %v", err)
		}
		var h2 header
		if err := h2.UnmarshalBinary(hb); err != nil {
			t.Fatalf("encoded header does not decode: %v", err)
		}
		if h2.Spec.String() != h.Spec.String() || h2.RedoBytes != h.RedoBytes {
			t.Fatalf("header round trip: %v, want %v", h2.Spec, h.Spec)
		}
		buf := make([]byte, rf.lay.slotSize)
		n := h.Spec.marshalSlot(buf, &slot{Gen: rf.gen, State: rf.state})
		sl, err := h.Spec.unmarshalSlot(buf[:n])
		if err != nil {
			t.Fatalf("encoded slot does not decode: %v", err)
		}
		buf2 := make([]byte, rf.lay.slotSize)
		if n2 := h.Spec.marshalSlot(buf2, sl); !bytes.Equal(buf[:n], buf2[:n2]) {
			t.Fatal("slot round trip differs")
		}
		// Whatever opened can be fetched and dumped.
		for _, cf := range []CF{Average, Min, Max, Last} {
			rf.Fetch(cf, rf.Last().Sec-1000, rf.Last().Sec, 0)
		}
		rf.DumpXML(new(bytes.Buffer))
	})
}

// FuzzRestoreXML feeds arbitrary XML to the importer: it must never
// panic, and whatever imports must dump and import to the same dump.
func FuzzRestoreXML(f *testing.F) {
	var b bytes.Buffer
	sampleRRD(f).DumpXML(&b)
	f.Add(b.Bytes())
	if x, err := os.ReadFile(filepath.Join("testdata", "rrdtool-dump.xml")); err == nil {
		f.Add(x)
	}
	f.Fuzz(func(t *testing.T, x []byte) {
		r, err := RestoreXML(bytes.NewReader(x))
		if err != nil {
			return
		}
		var a, c bytes.Buffer
		if err := r.DumpXML(&a); err != nil {
			t.Fatal(err)
		}
		r2, err := RestoreXML(bytes.NewReader(a.Bytes()))
		if err != nil {
			t.Fatalf("our own dump does not import: %v\n%s", err, a.String())
		}
		if err := r2.DumpXML(&c); err != nil {
			t.Fatal(err)
		}
		if a.String() != c.String() {
			t.Fatal("dump → restore → dump differs")
		}
	})
}

func sampleRRD(t testing.TB) *RRD {
	spec := Spec{Step: 10,
		DS:  mustDS(t, "DS:g:GAUGE:30:U:100", "DS:c:COUNTER:30:0:U"),
		RRA: mustRRA(t, "RRA:AVERAGE:0.5:1:4", "RRA:MAX:0.5:2:3"),
	}
	r, err := New(spec, Time{Sec: 1700000000})
	if err != nil {
		t.Fatal(err)
	}
	for i := int64(1); i < 8; i++ {
		r.Update(Time{Sec: 1700000000 + 9*i, Usec: 250000}, Float(float64(i)), Uint(uint64(i*1000)))
	}
	return r
}

func sampleImage(t testing.TB) []byte {
	p := filepath.Join(t.TempDir(), "s.rrd")
	if err := sampleRRD(t).Save(p, &CreateOptions{RedoBytes: 256}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWriteFuzzCorpus refreshes the checked-in seed corpora when
// RRD_WRITE_CORPUS is set.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("RRD_WRITE_CORPUS") == "" {
		return
	}
	write := func(target, name string, b []byte) {
		d := filepath.Join("testdata", "fuzz", target)
		os.MkdirAll(d, 0o755)
		if err := os.WriteFile(filepath.Join(d, name), []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := sampleImage(t)
	write("FuzzFileDecode", "valid", img)
	torn := append([]byte(nil), img...)
	l := sampleRRD(t).Spec.layout(256)
	copy(torn[l.headerSize+100:], make([]byte, 50)) // slot 0 torn
	write("FuzzFileDecode", "torn-slot", torn)
	write("FuzzFileDecode", "short", img[:100])
	var b bytes.Buffer
	sampleRRD(t).DumpXML(&b)
	write("FuzzRestoreXML", "ours", b.Bytes())
	if x, err := os.ReadFile(filepath.Join("testdata", "rrdtool-dump.xml")); err == nil {
		write("FuzzRestoreXML", "rrdtool", x)
	}
	write("FuzzRestoreXML", "empty-rra", []byte("<rrd><version>0003</version><step>10</step><lastupdate>5</lastupdate><ds><name>a</name><type>GAUGE</type><minimal_heartbeat>5</minimal_heartbeat><min>NaN</min><max>NaN</max><last_ds>U</last_ds><value>NaN</value><unknown_sec>0</unknown_sec></ds><rra><cf>AVERAGE</cf><pdp_per_row>1</pdp_per_row><params><xff>0.5</xff></params><cdp_prep><ds><primary_value>0</primary_value><secondary_value>0</secondary_value><value>NaN</value><unknown_datapoints>0</unknown_datapoints></ds></cdp_prep><database></database></rra></rrd>"))
}
