package main

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/recorder"

	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
)

// textBox is where a string was drawn, in the figure's coordinates.
type textBox struct {
	text     string
	min, max vg.Point
}

// affine is a 2-D affine map: x' = a·x + c·y + e, y' = b·x + d·y + f.
type affine struct{ a, b, c, d, e, f float64 }

func (m affine) then(n affine) affine { // m applied after n: m∘n
	return affine{
		a: m.a*n.a + m.c*n.b, b: m.b*n.a + m.d*n.b,
		c: m.a*n.c + m.c*n.d, d: m.b*n.c + m.d*n.d,
		e: m.a*n.e + m.c*n.f + m.e, f: m.b*n.e + m.d*n.f + m.f,
	}
}

func (m affine) apply(x, y float64) (float64, float64) {
	return m.a*x + m.c*y + m.e, m.b*x + m.d*y + m.f
}

// drawnText replays the recorded drawing, following its translations, rotations and scalings,
// and returns the box of every string drawn.
func drawnText(t *testing.T, rec *recorder.Canvas) []textBox {
	t.Helper()
	m := affine{a: 1, d: 1}
	var stack []affine
	var boxes []textBox
	for _, a := range rec.Actions {
		switch a := a.(type) {
		case *recorder.Push:
			stack = append(stack, m)
		case *recorder.Pop:
			m, stack = stack[len(stack)-1], stack[:len(stack)-1]
		case *recorder.Translate:
			m = m.then(affine{a: 1, d: 1, e: float64(a.Point.X), f: float64(a.Point.Y)})
		case *recorder.Rotate:
			s, c := math.Sincos(a.Angle)
			m = m.then(affine{a: c, b: s, c: -s, d: c})
		case *recorder.Scale:
			m = m.then(affine{a: a.X, d: a.Y})
		case *recorder.FillString:
			face := font.DefaultCache.Lookup(a.Font, a.Size)
			ext := face.Extents()
			x0, y0 := float64(a.Point.X), float64(a.Point.Y-ext.Descent)
			x1, y1 := float64(a.Point.X+face.Width(a.String)), float64(a.Point.Y+ext.Ascent)
			b := textBox{text: a.String, min: vg.Point{X: vg.Length(math.Inf(1)), Y: vg.Length(math.Inf(1))},
				max: vg.Point{X: vg.Length(math.Inf(-1)), Y: vg.Length(math.Inf(-1))}}
			for _, corner := range [][2]float64{{x0, y0}, {x0, y1}, {x1, y0}, {x1, y1}} {
				x, y := m.apply(corner[0], corner[1])
				b.min.X, b.min.Y = min(b.min.X, vg.Length(x)), min(b.min.Y, vg.Length(y))
				b.max.X, b.max.Y = max(b.max.X, vg.Length(x)), max(b.max.Y, vg.Length(y))
			}
			boxes = append(boxes, b)
		}
	}
	return boxes
}

// figureReport is a report whose bins reach both ends of [0, 1], with large counts and a long
// name: what pushes labels to the edges.
func figureReport(claims bool) *plumbv1.Report {
	bins := func(shift float64) []*plumbv1.ReliabilityBin {
		var out []*plumbv1.ReliabilityBin
		for b := range 15 {
			lo, hi := float64(b)/15, float64(b+1)/15
			conf := lo + (hi-lo)*(0.5+shift)
			out = append(out, &plumbv1.ReliabilityBin{Lower: lo, Upper: hi, Count: int32(1000 * (b + 1)), Confidence: conf, Accuracy: math.Min(1, conf*1.2)})
		}
		out[0].Confidence, out[14].Confidence = 0, 1
		return out
	}
	ece := func(v float64) *float64 { return &v }
	r := &plumbv1.Report{
		Profile:  &plumbv1.ProfileRef{Name: strings.Repeat("long-profile-name.", 7) + "x", Version: 12},
		Examples: 15000, Before: &plumbv1.Metrics{Ece: ece(0.2345)}, After: &plumbv1.Metrics{Ece: ece(0.0123)},
		BinsBefore: bins(-0.2), BinsAfter: bins(0.2),
	}
	if claims {
		r.Claims = &plumbv1.ClaimReport{Before: &plumbv1.ClaimMetrics{Claims: 9000}, After: &plumbv1.ClaimMetrics{Claims: 9000, Ece: ece(0.05)},
			BinsBefore: bins(0.1), BinsAfter: bins(-0.1)}
	}
	return r
}

// TestFigureLabelsInside draws the reliability figure of a report and of a claims report and
// requires every string drawn — title, tick labels, axis labels, legend — to lie inside the
// canvas and to overlap no other string, and the legend to hold both sides with their ECE.
func TestFigureLabelsInside(t *testing.T) {
	for _, claims := range []bool{false, true} {
		t.Run(fmt.Sprint("claims=", claims), func(t *testing.T) {
			rec := &recorder.Canvas{}
			d := reportFigure(figureReport(claims))
			c := draw.Canvas{Canvas: rec, Rectangle: vg.Rectangle{Max: vg.Point{X: figureWidth, Y: figureHeight}}}
			if err := d.draw(c); err != nil {
				t.Fatal(err)
			}
			boxes := drawnText(t, rec)
			seen := map[string]bool{}
			for i, b := range boxes {
				seen[b.text] = true
				if b.min.X < 0 || b.min.Y < 0 || b.max.X > figureWidth || b.max.Y > figureHeight {
					t.Errorf("%q drawn at (%.1f, %.1f)–(%.1f, %.1f), outside the %.0f × %.0f canvas",
						b.text, b.min.X, b.min.Y, b.max.X, b.max.Y, figureWidth, figureHeight)
				}
				for _, o := range boxes[:i] {
					// A box spans its font's whole ascent and descent, 1.11 em, where the lines
					// of one text are 1 em apart: stacked lines overlap by 0.11 em (1.3 points
					// at 12) without their glyphs touching. More than 2 points is an overlap.
					if b.min.X < o.max.X-2 && o.min.X < b.max.X-2 && b.min.Y < o.max.Y-2 && o.min.Y < b.max.Y-2 {
						t.Errorf("%q %v–%v overlaps %q %v–%v", b.text, b.min, b.max, o.text, o.min, o.max)
					}
				}
			}
			want := []string{"perfect calibration", "before (ECE 0.234)", "after (ECE 0.012)", "confidence", "accuracy", "questions", "15000 held-out questions"}
			if claims {
				want = []string{"before (ECE n/a)", "after (ECE 0.050)", "claims", "9000 held-out claims"}
			}
			title := false
			for text := range seen {
				title = title || strings.HasPrefix(text, "Reliability of long-profile-name.long-profile-name.") && strings.HasSuffix(text, "…")
			}
			if !title {
				t.Errorf("no title cut short with an ellipsis; drawn: %v", keys(seen))
			}
			for _, w := range want {
				if !seen[w] {
					t.Errorf("%q not drawn; drawn: %v", w, keys(seen))
				}
			}
		})
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
