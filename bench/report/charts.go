package report

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// chart is one figure: a line per peer over the chunk sizes.
type chart struct {
	file   string // base name, without extension
	title  string
	ylabel string
	logY   bool
	value  func(Summary) (float64, bool)
}

func (r *Results) charts() []chart {
	return []chart{
		{"goodput", "Goodput", "goodput (KB/s, log scale)", true,
			func(s Summary) (float64, bool) { return s.Goodput / 1000, s.Goodput > 0 }},
		{"overhead", "Wire overhead", "bytes on the wire beyond the image (%)", false,
			func(s Summary) (float64, bool) { return (s.WireRatio - 1) * 100, true }},
		{"cpu", "Gateway CPU", "server CPU (ms per MiB, log scale)", true,
			func(s Summary) (float64, bool) { return s.CPUmsPerMiB, s.CPUmsPerMiB > 0 }},
	}
}

// WriteCharts draws every chart of every profile into dir as PNG and SVG and returns the
// paths of the SVGs relative to dir, by profile and chart.
func (r *Results) WriteCharts(dir string) (map[string]map[string]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	out := map[string]map[string]string{}
	for _, prof := range r.Profiles {
		out[prof.Name] = map[string]string{}
		for _, c := range r.charts() {
			p, err := r.plot(prof, c)
			if err != nil {
				return nil, err
			}
			if p == nil {
				continue
			}
			base := c.file + "-" + prof.Name
			for _, ext := range []string{".png", ".svg"} {
				if err := p.Save(18*vg.Centimeter, 11*vg.Centimeter, filepath.Join(dir, base+ext)); err != nil {
					return nil, fmt.Errorf("chart %s: %w", base+ext, err)
				}
			}
			out[prof.Name][c.file] = base + ".svg"
		}
	}
	return out, nil
}

func (r *Results) plot(prof Profile, c chart) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s vs chunk size: %s (%s)", c.title, prof.Name, prof.Description)
	p.X.Label.Text = "chunk size (bytes, log scale)"
	p.Y.Label.Text = c.ylabel
	p.X.Scale = plot.LogScale{}
	var ticks plot.ConstantTicks
	for _, ch := range r.Chunks {
		ticks = append(ticks, plot.Tick{Value: float64(ch), Label: strconv.Itoa(ch)})
	}
	p.X.Tick.Marker = ticks
	if c.logY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	lines := 0
	for i, peer := range r.Peers {
		var pts plotter.XYs
		for _, ch := range r.Chunks {
			cell, ok := prof.Cell(peer.Name, ch)
			if !ok {
				continue
			}
			s, ok := cell.Summary()
			if !ok {
				continue
			}
			if v, ok := c.value(s); ok {
				pts = append(pts, plotter.XY{X: float64(ch), Y: v})
			}
		}
		if len(pts) == 0 {
			continue
		}
		l, pt, err := plotter.NewLinePoints(pts)
		if err != nil {
			return nil, err
		}
		l.Color, pt.Color, pt.Shape = plotutil.Color(i), plotutil.Color(i), plotutil.Shape(i)
		l.Dashes = plotutil.Dashes(i)
		p.Add(l, pt)
		p.Legend.Add(peer.Name, l, pt)
		lines++
	}
	if lines == 0 {
		return nil, nil
	}
	return p, nil
}
