package main

import (
	"fmt"
	"image/color"
	"io"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
)

// The reliability figure of a report: the reliability diagram above (accuracy against mean
// confidence per bin, before and after, over the diagonal of perfect calibration), the
// histogram of the confidences below (how many questions each bin holds, before and after, on
// the same x axis), and a boxed legend under both, so that nothing is drawn over the data or
// the frame. A claims report draws its claims.

const (
	figureWidth  = 6 * vg.Inch
	figureHeight = 8 * vg.Inch
	figureDPI    = 144
	legendHeight = 0.6 * vg.Inch // the strip under the panels
	histShare    = 0.3           // the histogram's share of the panels' height
)

// figureSide is one curve of the figure: before or after.
type figureSide struct {
	name  string
	bins  []*plumbv1.ReliabilityBin
	ece   *float64
	col   color.RGBA
	shape draw.GlyphDrawer
}

// figureData is what a report gives the figure.
type figureData struct {
	name  string // the profile's name and version
	title string // what was reported on
	unit  string // "questions" or "claims"
	sides [2]figureSide
}

var (
	beforeColor = color.RGBA{R: 200, G: 90, B: 0, A: 255}
	afterColor  = color.RGBA{R: 20, G: 90, B: 200, A: 255}
	diagColor   = color.Gray{Y: 110}
)

func reportFigure(r *plumbv1.Report) figureData {
	name := orDash(r.GetProfile().GetName())
	if v := r.GetProfile().GetVersion(); v > 0 {
		name += fmt.Sprintf(" v%d", v)
	}
	d := figureData{unit: "questions"}
	before, after := r.GetBinsBefore(), r.GetBinsAfter()
	eb, ea := r.GetBefore().Ece, r.GetAfter().Ece
	n := r.GetExamples()
	if c := r.GetClaims(); c != nil {
		d.unit = "claims"
		before, after = c.GetBinsBefore(), c.GetBinsAfter()
		eb, ea = c.GetBefore().Ece, c.GetAfter().Ece
		n = c.GetAfter().GetClaims()
	}
	d.name = name
	d.title = fmt.Sprintf("%d held-out %s", n, d.unit)
	d.sides = [2]figureSide{
		{"before", before, eb, beforeColor, draw.BoxGlyph{}},
		{"after", after, ea, afterColor, draw.CircleGlyph{}},
	}
	return d
}

// label is a side's legend entry: its name and ECE.
func (s *figureSide) label() string {
	if s.ece == nil {
		return s.name + " (ECE n/a)"
	}
	return fmt.Sprintf("%s (ECE %.3f)", s.name, *s.ece)
}

// writeFigure writes the figure of r as PNG and SVG at the two paths.
func writeFigure(r *plumbv1.Report, pngPath, svgPath string) error {
	d := reportFigure(r)
	img := vgimg.NewWith(vgimg.UseWH(figureWidth, figureHeight), vgimg.UseDPI(figureDPI))
	if err := d.draw(draw.New(img)); err != nil {
		return err
	}
	svg := vgsvg.New(figureWidth, figureHeight)
	if err := d.draw(draw.New(svg)); err != nil {
		return err
	}
	if err := writeFile(pngPath, vgimg.PngCanvas{Canvas: img}.WriteTo); err != nil {
		return err
	}
	return writeFile(svgPath, svg.WriteTo)
}

// writeFile creates path and writes it with write.
func writeFile(path string, write func(io.Writer) (int64, error)) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// draw draws the figure on c: white ground, the two panels with their data areas aligned, the
// legend under them.
func (d *figureData) draw(c draw.Canvas) error {
	c.SetColor(color.White)
	c.Fill(c.Rectangle.Path())
	diagram, err := d.diagram()
	if err != nil {
		return err
	}
	hist := d.histogram()
	// The margins hold what the axes draw past their data area: the last tick label, centred
	// on x = 1, and the title.
	margin := vg.Points(14)
	panels := draw.Crop(c, margin/2, -margin, legendHeight, -margin)
	h := panels.Max.Y - panels.Min.Y
	top := draw.Crop(panels, 0, 0, vg.Length(histShare)*h, 0)
	bottom := draw.Crop(panels, 0, 0, 0, -(1-vg.Length(histShare))*h)
	alignX([]*plot.Plot{diagram, hist}, []*draw.Canvas{&top, &bottom})
	diagram.Draw(top)
	hist.Draw(bottom)
	d.legend(draw.Crop(c, 0, 0, 0, -(c.Max.Y - c.Min.Y - legendHeight)))
	return nil
}

// alignX crops the canvases so that the plots' data areas share their left and right edges.
func alignX(plots []*plot.Plot, cs []*draw.Canvas) {
	var left, right vg.Length
	for i, p := range plots {
		dc := p.DataCanvas(*cs[i])
		left = max(left, dc.Min.X-cs[i].Min.X)
		right = max(right, cs[i].Max.X-dc.Max.X)
	}
	for i, p := range plots {
		dc := p.DataCanvas(*cs[i])
		*cs[i] = draw.Crop(*cs[i], left-(dc.Min.X-cs[i].Min.X), -(right - (cs[i].Max.X - dc.Max.X)), 0, 0)
	}
}

// fitWidth returns s, cut short with an ellipsis where it is wider than width in sty (a
// profile's name may be 128 characters long).
func fitWidth(sty text.Style, s string, width vg.Length) string {
	if sty.Width(s) <= width {
		return s
	}
	r := []rune(s)
	for len(r) > 0 && sty.Width(string(r)+"…") > width {
		r = r[:len(r)-1]
	}
	return string(r) + "…"
}

// diagram is the upper panel: accuracy against mean confidence per non-empty bin.
func (d *figureData) diagram() (*plot.Plot, error) {
	p := plot.New()
	p.Title.Padding = vg.Points(8)
	p.Title.Text = fitWidth(p.Title.TextStyle, "Reliability of "+d.name, figureWidth-vg.Points(40)) + "\n" + d.title
	p.X.Label.Text = "confidence (mean of the bin)"
	p.Y.Label.Text = "accuracy"
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1
	p.Add(plotter.NewGrid())
	diag, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}})
	if err != nil {
		return nil, err
	}
	diag.Dashes = []vg.Length{vg.Points(4), vg.Points(4)}
	diag.Color = diagColor
	p.Add(diag)
	for _, s := range d.sides {
		var xy plotter.XYs
		for _, b := range s.bins {
			if b.GetCount() > 0 {
				xy = append(xy, plotter.XY{X: b.GetConfidence(), Y: b.GetAccuracy()})
			}
		}
		if len(xy) == 0 {
			continue
		}
		line, pts, err := plotter.NewLinePoints(xy)
		if err != nil {
			return nil, err
		}
		line.Color, line.Width = s.col, vg.Points(1.5)
		pts.Color, pts.Shape, pts.Radius = s.col, s.shape, vg.Points(3.5)
		p.Add(line, pts)
	}
	return p, nil
}

// histogram is the lower panel: how many questions each bin holds, before and after side by
// side within the bin.
func (d *figureData) histogram() *plot.Plot {
	p := plot.New()
	p.X.Label.Text = "confidence"
	p.Y.Label.Text = d.unit
	p.X.Min, p.X.Max, p.Y.Min = 0, 1, 0
	p.Add(plotter.NewGrid())
	most := 1.0
	for k, s := range d.sides {
		h := &plotter.Histogram{FillColor: color.NRGBA{R: s.col.R, G: s.col.G, B: s.col.B, A: 150}, LineStyle: plotter.DefaultLineStyle}
		h.LineStyle.Color = s.col
		h.LineStyle.Width = vg.Points(0.5)
		for _, b := range s.bins {
			lo, hi := b.GetLower(), b.GetUpper()
			mid := (lo + hi) / 2
			if k == 0 {
				hi = mid
			} else {
				lo = mid
			}
			h.Bins = append(h.Bins, plotter.HistogramBin{Min: lo, Max: hi, Weight: float64(b.GetCount())})
			most = max(most, float64(b.GetCount()))
		}
		if len(h.Bins) > 0 {
			h.Width = h.Bins[0].Max - h.Bins[0].Min
			p.Add(h)
		}
	}
	p.Y.Max = most * 1.05
	return p
}

// legend draws the legend in a box centred on c: the diagonal and the two sides, in one row.
func (d *figureData) legend(c draw.Canvas) {
	sty := text.Style{Font: font.From(plot.DefaultFont, 10), Handler: plot.DefaultTextHandler, YAlign: draw.YCenter}
	diag := plotter.DefaultLineStyle
	diag.Color, diag.Dashes = diagColor, []vg.Length{vg.Points(4), vg.Points(4)}
	type entry struct {
		label string
		thumb func(c *draw.Canvas)
	}
	entries := []entry{{"perfect calibration", func(c *draw.Canvas) {
		y := (c.Min.Y + c.Max.Y) / 2
		c.StrokeLine2(diag, c.Min.X, y, c.Max.X, y)
	}}}
	for _, s := range d.sides {
		line := plotter.DefaultLineStyle
		line.Color, line.Width = s.col, vg.Points(1.5)
		glyph := draw.GlyphStyle{Color: s.col, Shape: s.shape, Radius: vg.Points(3.5)}
		entries = append(entries, entry{s.label(), func(c *draw.Canvas) {
			y := (c.Min.Y + c.Max.Y) / 2
			c.StrokeLine2(line, c.Min.X, y, c.Max.X, y)
			c.DrawGlyph(glyph, vg.Point{X: (c.Min.X + c.Max.X) / 2, Y: y})
		}})
	}
	const thumb, gap, pad = 22, 6, 8 // points
	width := vg.Length(0)
	for i, e := range entries {
		width += vg.Points(thumb+gap) + sty.Width(e.label)
		if i > 0 {
			width += vg.Points(2 * pad)
		}
	}
	width += vg.Points(2 * pad)
	height := sty.Height("Ag") + vg.Points(2*pad)
	x0 := (c.Min.X+c.Max.X)/2 - width/2
	y0 := (c.Min.Y+c.Max.Y)/2 - height/2
	box := vg.Rectangle{Min: vg.Point{X: x0, Y: y0}, Max: vg.Point{X: x0 + width, Y: y0 + height}}
	c.SetColor(color.White)
	c.Fill(box.Path())
	c.SetLineStyle(draw.LineStyle{Color: color.Gray{Y: 150}, Width: vg.Points(0.75)})
	c.Stroke(box.Path())
	x, y := x0+vg.Points(pad), (box.Min.Y+box.Max.Y)/2
	for _, e := range entries {
		icon := draw.Canvas{Canvas: c.Canvas, Rectangle: vg.Rectangle{Min: vg.Point{X: x, Y: y - vg.Points(5)}, Max: vg.Point{X: x + vg.Points(thumb), Y: y + vg.Points(5)}}}
		e.thumb(&icon)
		x += vg.Points(thumb + gap)
		c.FillText(sty, vg.Point{X: x, Y: y}, e.label)
		x += sty.Width(e.label) + vg.Points(2*pad)
	}
}
