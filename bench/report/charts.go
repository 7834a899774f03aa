package report

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
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
			base := c.file + "-" + strings.ReplaceAll(prof.Name, "+", "-")
			for _, ext := range []string{".png", ".svg"} {
				if err := p.Save(18*vg.Centimeter, 11*vg.Centimeter, filepath.Join(dir, base+ext)); err != nil {
					return nil, fmt.Errorf("chart %s: %w", base+ext, err)
				}
			}
			out[prof.Name][c.file] = base + ".svg"
		}
	}
	if len(r.Sweep) > 0 {
		if err := r.sweepChart(filepath.Join(dir, "sweep")); err != nil {
			return nil, err
		}
		out[sweepChartKey] = map[string]string{"sweep": "sweep.svg"}
	}
	return out, nil
}

// sweepChartKey is where WriteCharts puts the sweep's chart in its map, beside the profiles.
const sweepChartKey = "(sweep)"

// sweepChart draws the concurrency sweep as two panels over the device count: the gateway's
// memory per session (idle and held), and the aggregate goodput.
func (r *Results) sweepChart(base string) error {
	mem, gp := plot.New(), plot.New()
	mem.Title.Text = "Gateway memory and goodput vs devices (one gateway, loopback)"
	mem.Y.Label.Text = "gateway memory per session (bytes, log scale)"
	// Log scale: one session's share of the runtime's fixed costs at 1 device would flatten the rest.
	mem.Y.Scale = plot.LogScale{}
	mem.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	gp.Y.Label.Text = "goodput, all devices (MB/s)"
	gp.X.Label.Text = "devices (log scale)"
	var ticks plot.ConstantTicks
	for _, s := range r.Sweep {
		ticks = append(ticks, plot.Tick{Value: float64(s.Devices), Label: grouped(s.Devices)})
	}
	for _, p := range []*plot.Plot{mem, gp} {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = ticks
		p.Add(plotter.NewGrid())
		p.Legend.Top = true
	}
	series := []struct {
		p    *plot.Plot
		name string
		get  func(SweepStep) float64
	}{
		{mem, "held: heap + stacks", func(s SweepStep) float64 { _, h := s.Held.PerSession(s.Base); return h }},
		{mem, "held: RSS", func(s SweepStep) float64 { r, _ := s.Held.PerSession(s.Base); return r }},
		{mem, "idle: heap + stacks", func(s SweepStep) float64 { _, h := s.Idle.PerSession(s.Base); return h }},
		{gp, "goodput", func(s SweepStep) float64 { return s.Goodput / 1e6 }},
	}
	for i, se := range series {
		var pts plotter.XYs
		for _, s := range r.Sweep {
			if v := se.get(s); s.Error == "" && v > 0 { // a log scale has no room for noise below 0
				pts = append(pts, plotter.XY{X: float64(s.Devices), Y: v})
			}
		}
		if len(pts) == 0 {
			continue
		}
		l, pt, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		l.Color, pt.Color, pt.Shape = plotutil.Color(i), plotutil.Color(i), plotutil.Shape(i)
		l.Dashes = plotutil.Dashes(i)
		se.p.Add(l, pt)
		se.p.Legend.Add(se.name, l, pt)
	}
	w, h := 18*vg.Centimeter, 16*vg.Centimeter
	for _, ext := range []string{".png", ".svg"} {
		var c vg.CanvasWriterTo
		if ext == ".png" {
			c = vgimg.PngCanvas{Canvas: vgimg.New(w, h)}
		} else {
			c = vgsvg.New(w, h)
		}
		tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Millimeter, PadBottom: vg.Millimeter, PadY: 4 * vg.Millimeter,
			PadLeft: vg.Millimeter, PadRight: 3 * vg.Millimeter}
		cs := plot.Align([][]*plot.Plot{{mem}, {gp}}, tiles, draw.New(c))
		mem.Draw(cs[0][0])
		gp.Draw(cs[1][0])
		f, err := os.Create(base + ext)
		if err != nil {
			return err
		}
		if _, err := c.WriteTo(f); err != nil {
			f.Close()
			return fmt.Errorf("chart %s: %w", base+ext, err)
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
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
		name := peer.Name
		for _, ch := range r.Chunks {
			cell, ok := prof.Cell(peer.Name, ch)
			if !ok {
				continue
			}
			s, ok := cell.Summary()
			if !ok {
				continue
			}
			if s.Prefix > 0 {
				name = peer.Name + " (on a prefix, see RESULTS.md)"
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
		p.Legend.Add(name, l, pt)
		lines++
	}
	if lines == 0 {
		return nil, nil
	}
	return p, nil
}
