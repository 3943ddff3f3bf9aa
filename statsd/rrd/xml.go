package rrd

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// DumpXML writes the RRD in rrdtool dump's XML format (version 0003), so
// `rrdtool restore` rebuilds it as a real .rrd file. rrdtool's format has
// no microseconds for the last update: they are dropped.
func DumpXML(w io.Writer, spec *Spec, st *State, read RowReader) error {
	bw := bufio.NewWriter(w)
	p := func(format string, a ...any) { fmt.Fprintf(bw, format, a...) }
	p("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n")
	p("<!DOCTYPE rrd SYSTEM \"https://oss.oetiker.ch/rrdtool/rrdtool.dtd\">\n")
	p("<!-- Round Robin Database Dump -->\n<rrd>\n")
	p("\t<version>0003</version>\n")
	p("\t<step>%d</step> <!-- Seconds -->\n", spec.Step)
	p("\t<lastupdate>%d</lastupdate> <!-- %s -->\n\n", st.LastUp.Sec, xmlDate(st.LastUp.Sec))
	for i, d := range spec.DS {
		pdp := st.PDP[i]
		p("\t<ds>\n\t\t<name> %s </name>\n\t\t<type> %s </type>\n", d.Name, d.Type)
		p("\t\t<minimal_heartbeat>%d</minimal_heartbeat>\n", d.Heartbeat)
		p("\t\t<min>%s</min>\n\t\t<max>%s</max>\n\n", FormatNumber(d.Min), FormatNumber(d.Max))
		p("\t\t<!-- PDP Status -->\n\t\t<last_ds>%s</last_ds>\n", pdp.LastDS)
		p("\t\t<value>%s</value>\n\t\t<unknown_sec> %d </unknown_sec>\n\t</ds>\n\n", FormatNumber(pdp.Value), pdp.UnknownSec)
	}
	p("\t<!-- Round Robin Archives -->\n")
	nds := len(spec.DS)
	row := make([]float64, nds)
	for r, a := range spec.RRA {
		rstep := int64(spec.Step * a.Steps)
		p("\t<rra>\n\t\t<cf>%s</cf>\n", a.CF)
		p("\t\t<pdp_per_row>%d</pdp_per_row> <!-- %d seconds -->\n\n", a.Steps, rstep)
		p("\t\t<params>\n\t\t<xff>%s</xff>\n\t\t</params>\n", FormatNumber(a.XFF))
		p("\t\t<cdp_prep>\n")
		for d := 0; d < nds; d++ {
			c := st.CDP[r*nds+d]
			p("\t\t\t<ds>\n")
			p("\t\t\t<primary_value>%s</primary_value>\n", FormatNumber(c.Primary))
			p("\t\t\t<secondary_value>%s</secondary_value>\n", FormatNumber(c.Secondary))
			p("\t\t\t<value>%s</value>\n", FormatNumber(c.Value))
			p("\t\t\t<unknown_datapoints>%d</unknown_datapoints>\n", c.UnknownPDP)
			p("\t\t\t</ds>\n")
		}
		p("\t\t</cdp_prep>\n\t\t<database>\n")
		end := st.LastUp.Sec - mod(st.LastUp.Sec, rstep)
		for k := uint64(0); k < a.Rows; k++ {
			idx := (st.CurRow[r] + 1 + k) % a.Rows
			if err := read(r, idx, row); err != nil {
				return err
			}
			ts := end - int64(a.Rows-1-k)*rstep
			p("\t\t\t<!-- %s / %d --> <row>", xmlDate(ts), ts)
			for _, v := range row {
				p("<v>%s</v>", FormatNumber(v))
			}
			p("</row>\n")
		}
		p("\t\t</database>\n\t</rra>\n")
	}
	p("</rrd>\n")
	return bw.Flush()
}

// DumpXML writes the in-memory RRD as rrdtool XML.
func (r *RRD) DumpXML(w io.Writer) error { return DumpXML(w, &r.Spec, &r.State, r.readRow) }

// DumpXML writes the file as rrdtool XML.
func (f *File) DumpXML(w io.Writer) error { return DumpXML(w, &f.hdr.Spec, &f.state, f.readRow) }

func xmlDate(sec int64) string { return time.Unix(sec, 0).UTC().Format("2006-01-02 15:04:05 MST") }

// FormatNumber formats a value the way rrdtool prints them, C's "%0.10e",
// with NaN, inf and -inf.
func FormatNumber(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "inf"
	case math.IsInf(v, -1):
		return "-inf"
	}
	return strconv.FormatFloat(v, 'e', 10, 64)
}

// The XML as rrdtool writes it.
type xmlRRD struct {
	XMLName    xml.Name `xml:"rrd"`
	Version    string   `xml:"version"`
	Step       string   `xml:"step"`
	LastUpdate string   `xml:"lastupdate"`
	DS         []xmlDS  `xml:"ds"`
	RRA        []xmlRRA `xml:"rra"`
}

type xmlDS struct {
	Name       string `xml:"name"`
	Type       string `xml:"type"`
	Heartbeat  string `xml:"minimal_heartbeat"`
	Min        string `xml:"min"`
	Max        string `xml:"max"`
	LastDS     string `xml:"last_ds"`
	Value      string `xml:"value"`
	UnknownSec string `xml:"unknown_sec"`
}

type xmlRRA struct {
	CF        string     `xml:"cf"`
	PDPPerRow string     `xml:"pdp_per_row"`
	XFF       string     `xml:"params>xff"`
	CDPPrep   []xmlCDP   `xml:"cdp_prep>ds"`
	Rows      []xmlDBRow `xml:"database>row"`
}

type xmlCDP struct {
	Primary    string `xml:"primary_value"`
	Secondary  string `xml:"secondary_value"`
	Value      string `xml:"value"`
	UnknownPDP string `xml:"unknown_datapoints"`
}

type xmlDBRow struct {
	V []string `xml:"v"`
}

// maxXMLBytes bounds what RestoreXML reads.
const maxXMLBytes = 1 << 30

// RestoreXML reads an rrdtool XML dump (format 0003, the data source
// types and consolidation functions this package has) into memory.
func RestoreXML(r io.Reader) (*RRD, error) {
	var x xmlRRD
	dec := xml.NewDecoder(io.LimitReader(r, maxXMLBytes))
	dec.Strict = true
	if err := dec.Decode(&x); err != nil {
		return nil, fmt.Errorf("%w: XML: %w", ErrCorrupt, err)
	}
	bad := func(what, v string) error { return fmt.Errorf("%w: XML %s %q", ErrCorrupt, what, v) }
	if v := strings.TrimSpace(x.Version); v != "0003" && v != "0004" && v != "0005" {
		return nil, bad("version", x.Version)
	}
	var spec Spec
	var err error
	if spec.Step, err = strconv.ParseUint(strings.TrimSpace(x.Step), 10, 64); err != nil {
		return nil, bad("step", x.Step)
	}
	last, err := strconv.ParseInt(strings.TrimSpace(x.LastUpdate), 10, 64)
	if err != nil {
		return nil, bad("lastupdate", x.LastUpdate)
	}
	for _, d := range x.DS {
		var ds DS
		ds.Name = strings.TrimSpace(d.Name)
		if ds.Type, err = ParseDSType(strings.TrimSpace(d.Type)); err != nil {
			return nil, fmt.Errorf("%w: XML: %w", ErrCorrupt, err)
		}
		if ds.Heartbeat, err = strconv.ParseUint(strings.TrimSpace(d.Heartbeat), 10, 64); err != nil {
			return nil, bad("minimal_heartbeat", d.Heartbeat)
		}
		if ds.Min, err = xmlParse(d.Min); err != nil {
			return nil, bad("min", d.Min)
		}
		if ds.Max, err = xmlParse(d.Max); err != nil {
			return nil, bad("max", d.Max)
		}
		spec.DS = append(spec.DS, ds)
	}
	for _, a := range x.RRA {
		var ra RRA
		if ra.CF, err = ParseCF(strings.TrimSpace(a.CF)); err != nil {
			return nil, fmt.Errorf("%w: XML: %w", ErrCorrupt, err)
		}
		if ra.Steps, err = strconv.ParseUint(strings.TrimSpace(a.PDPPerRow), 10, 64); err != nil {
			return nil, bad("pdp_per_row", a.PDPPerRow)
		}
		if ra.XFF, err = xmlParse(a.XFF); err != nil {
			return nil, bad("xff", a.XFF)
		}
		ra.Rows = uint64(len(a.Rows))
		spec.RRA = append(spec.RRA, ra)
	}
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("%w: XML: %w", ErrCorrupt, err)
	}
	out, err := New(spec, Time{Sec: last})
	if err != nil {
		return nil, err
	}
	st := &out.State
	nds := len(spec.DS)
	for i, d := range x.DS {
		p := &st.PDP[i]
		if p.LastDS, err = ParseValue(strings.TrimSpace(d.LastDS)); err != nil {
			return nil, bad("last_ds", d.LastDS)
		}
		if p.Value, err = xmlParse(d.Value); err != nil {
			return nil, bad("value", d.Value)
		}
		if p.UnknownSec, err = strconv.ParseUint(strings.TrimSpace(d.UnknownSec), 10, 64); err != nil {
			return nil, bad("unknown_sec", d.UnknownSec)
		}
	}
	for r, a := range x.RRA {
		if len(a.CDPPrep) != nds {
			return nil, fmt.Errorf("%w: XML RRA %d has %d cdp_prep entries for %d DS", ErrCorrupt, r, len(a.CDPPrep), nds)
		}
		for d, c := range a.CDPPrep {
			cp := &st.CDP[r*nds+d]
			if cp.Primary, err = xmlParse(c.Primary); err != nil {
				return nil, bad("primary_value", c.Primary)
			}
			if cp.Secondary, err = xmlParse(c.Secondary); err != nil {
				return nil, bad("secondary_value", c.Secondary)
			}
			if cp.Value, err = xmlParse(c.Value); err != nil {
				return nil, bad("value", c.Value)
			}
			if cp.UnknownPDP, err = strconv.ParseUint(strings.TrimSpace(c.UnknownPDP), 10, 64); err != nil {
				return nil, bad("unknown_datapoints", c.UnknownPDP)
			}
		}
		// Rows come oldest first; the ring's newest row is the last one.
		data := out.Data[r]
		for i, row := range a.Rows {
			if len(row.V) != nds {
				return nil, fmt.Errorf("%w: XML RRA %d row %d has %d values for %d DS", ErrCorrupt, r, i, len(row.V), nds)
			}
			for d, v := range row.V {
				if data[i*nds+d], err = xmlParse(v); err != nil {
					return nil, bad("row value", v)
				}
			}
		}
		st.CurRow[r] = uint64(len(a.Rows)) - 1
	}
	return out, nil
}

// xmlParse parses a number of rrdtool's XML ("NaN", "inf", "%e").
func xmlParse(s string) (float64, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "nan", "-nan", "u":
		return dnan, nil
	case "inf", "+inf":
		return math.Inf(1), nil
	case "-inf":
		return math.Inf(-1), nil
	}
	return parseFloat(s)
}
