package aggregator

import (
	"bytes"
	"fmt"
	"image/color"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Graph size bounds and defaults, in pixels.
const (
	DefaultGraphWidth, DefaultGraphHeight = 800, 300
	MaxGraphSide                          = 4096
	minGraphSide                          = 64
)

// Graph draws a fetch as lines, one per data source, gaps where values are
// unknown. Format is "png" or "svg"; width and height are pixels.
func Graph(fr *FetchResponse, format string, width, height int) (io.WriterTo, error) {
	p := plot.New()
	p.Title.Text = fr.Entity + " (" + fr.CF + ")"
	p.X.Tick.Marker = plot.TimeTicks{Format: "01-02 15:04"}
	p.Legend.Top = true
	for i, ds := range fr.DS {
		c := plotutil.Color(i)
		var seg plotter.XYs
		flush := func() {
			if len(seg) == 0 {
				return
			}
			l, err := plotter.NewLine(seg)
			if err == nil {
				l.Color = c
				l.Width = vg.Points(1.5)
				p.Add(l)
			}
			seg = nil
		}
		for _, row := range fr.Rows {
			if v := row[i+1]; v != nil && !math.IsNaN(*v) {
				seg = append(seg, plotter.XY{X: *row[0], Y: *v})
			} else {
				flush()
			}
		}
		flush()
		p.Legend.Add(ds, legendThumb{c})
	}
	if fr.Start < fr.End {
		p.X.Min, p.X.Max = float64(fr.Start), float64(fr.End)
	}
	// 72 dpi: one point is one pixel, so the image is width × height.
	w, h := vg.Length(width), vg.Length(height)
	switch format {
	case "png":
		c := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(72))
		p.Draw(draw.New(c))
		return vgimg.PngCanvas{Canvas: c}, nil
	case "svg":
		c := vgsvg.New(w, h)
		p.Draw(draw.New(c))
		return svgPixels{c, width, height}, nil
	}
	return nil, fmt.Errorf("aggregator: graph format %q: png or svg", format)
}

// svgPixels sizes the SVG in pixels, as asked, rather than in points.
type svgPixels struct {
	c    *vgsvg.Canvas
	w, h int
}

func (s svgPixels) WriteTo(w io.Writer) (int64, error) {
	var b bytes.Buffer
	if _, err := s.c.WriteTo(&b); err != nil {
		return 0, err
	}
	out := bytes.Replace(b.Bytes(), fmt.Appendf(nil, `width="%dpt" height="%dpt"`, s.w, s.h),
		fmt.Appendf(nil, `width="%dpx" height="%dpx"`, s.w, s.h), 1)
	n, err := w.Write(out)
	return int64(n), err
}

// legendThumb draws a legend entry's line.
type legendThumb struct{ c color.Color }

func (l legendThumb) Thumbnail(c *draw.Canvas) {
	y := c.Center().Y
	c.StrokeLine2(draw.LineStyle{Color: l.c, Width: vg.Points(2)}, c.Min.X, y, c.Max.X, y)
}

func (a *Aggregator) serveGraph(w http.ResponseWriter, r *http.Request) {
	entity, ds, cf, start, end, res, err := fetchArgs(r, time.Now())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	width, err := side(r, "width", DefaultGraphWidth)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	height, err := side(r, "height", DefaultGraphHeight)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	fr, err := a.Fetch(entity, ds, cf, start, end, res)
	if err != nil {
		httpError(w, err)
		return
	}
	format := strings.TrimPrefix(r.URL.Path, "/graph.")
	g, err := Graph(fr, format, width, height)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if format == "png" {
		w.Header().Set("Content-Type", "image/png")
	} else {
		w.Header().Set("Content-Type", "image/svg+xml")
	}
	g.WriteTo(w)
}

func side(r *http.Request, name string, def int) (int, error) {
	v := r.FormValue(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < minGraphSide || n > MaxGraphSide {
		return 0, fmt.Errorf("%s=%q: pixels from %d to %d", name, v, minGraphSide, MaxGraphSide)
	}
	return n, nil
}
