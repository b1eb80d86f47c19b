package main

import (
	"fmt"
	"image/color"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
)

// metricRows are the metrics a report shows, in order.
var metricRows = []struct {
	name string
	get  func(*plumbv1.Metrics) float64
}{
	{"accuracy", (*plumbv1.Metrics).GetAccuracy},
	{"ECE (15 bins)", (*plumbv1.Metrics).GetEce},
	{"adaptive ECE", (*plumbv1.Metrics).GetAdaptiveEce},
	{"MCE", (*plumbv1.Metrics).GetMce},
	{"Brier", (*plumbv1.Metrics).GetBrier},
	{"NLL", (*plumbv1.Metrics).GetNll},
	{"AUROC", (*plumbv1.Metrics).GetAuroc},
	{"AURC", (*plumbv1.Metrics).GetAurc},
	{"coverage", (*plumbv1.Metrics).GetCoverage},
	{"mean set size", (*plumbv1.Metrics).GetMeanSetSize},
	{"singleton rate", (*plumbv1.Metrics).GetSingletonRate},
	{"answer rate", (*plumbv1.Metrics).GetAnswerRate},
	{"clarify rate", (*plumbv1.Metrics).GetClarifyRate},
	{"abstain rate", (*plumbv1.Metrics).GetAbstainRate},
	{"selective error", (*plumbv1.Metrics).GetSelectiveError},
	{"wording agreement", (*plumbv1.Metrics).GetWordingAgreement},
	{"sycophancy shift", (*plumbv1.Metrics).GetSycophancyShift},
}

// summary prints the before/after table of a report.
func summary(w io.Writer, r *plumbv1.Report) {
	fmt.Fprintf(w, "report on %d %s; temperature %s, α = %.2f, λ = %.2f for ε = %.2f\n",
		r.GetExamples(), splitNote(r), orDash(r.GetTemperatureMethod()), r.GetAlpha(), r.GetLambda(), r.GetRisk())
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "metric\tbefore\tafter\t")
	for _, m := range metricRows {
		fmt.Fprintf(tw, "%s\t%.4f\t%.4f\t\n", m.name, m.get(r.GetBefore()), m.get(r.GetAfter()))
	}
	tw.Flush()
}

// splitNote says where a report's examples came from: a fit's held-out split, or evaluation.
func splitNote(r *plumbv1.Report) string {
	if r.GetTune() == 0 && r.GetCalibrate() == 0 {
		return "examples (evaluation)"
	}
	return fmt.Sprintf("held-out examples (tune %d, calibrate %d)", r.GetTune(), r.GetCalibrate())
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// writeReport writes report.json, report.md, reliability.png and reliability.svg into dir.
func writeReport(dir string, r *plumbv1.Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := indented.Marshal(r)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.md"), []byte(markdown(r)), 0o644); err != nil {
		return err
	}
	p, err := reliabilityPlot(r)
	if err != nil {
		return err
	}
	for _, ext := range []string{"png", "svg"} {
		if err := p.Save(6*vg.Inch, 6*vg.Inch, filepath.Join(dir, "reliability."+ext)); err != nil {
			return fmt.Errorf("plot.Save: %w", err)
		}
	}
	return nil
}

// markdown renders the report as tables: before/after overall and per group.
func markdown(r *plumbv1.Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# plumb report: %s v%d\n\n", orDash(r.GetProfile().GetName()), r.GetProfile().GetVersion())
	fmt.Fprintf(&b, "%d %s. Temperature: %s. α = %.3g, global q̂ = %.4g, λ = %.2f for selective risk ε = %.3g.\n\n",
		r.GetExamples(), splitNote(r), orDash(r.GetTemperatureMethod()), r.GetAlpha(), r.GetQuantile(), r.GetLambda(), r.GetRisk())
	b.WriteString("Before: the uncalibrated default (T = 1, c = π̄(k*)). After: the profile.\n\n")
	b.WriteString("| metric | before | after |\n|---|---:|---:|\n")
	for _, m := range metricRows {
		fmt.Fprintf(&b, "| %s | %.4f | %.4f |\n", m.name, m.get(r.GetBefore()), m.get(r.GetAfter()))
	}
	if len(r.GetGroups()) > 0 {
		b.WriteString("\n## Per group\n\n| group | n | accuracy | ECE before | ECE after | coverage | mean set size | answer rate | selective error |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, g := range r.GetGroups() {
			a := g.GetAfter()
			fmt.Fprintf(&b, "| %s | %d | %.3f | %.4f | %.4f | %.3f | %.2f | %.3f | %.3f |\n", g.GetGroup(), a.GetExamples(), a.GetAccuracy(),
				g.GetBefore().GetEce(), a.GetEce(), a.GetCoverage(), a.GetMeanSetSize(), a.GetAnswerRate(), a.GetSelectiveError())
		}
	}
	b.WriteString("\n## Reliability (after)\n\n| bin | n | mean confidence | accuracy |\n|---|---:|---:|---:|\n")
	for _, bin := range r.GetBinsAfter() {
		if bin.GetCount() > 0 {
			fmt.Fprintf(&b, "| (%.3f, %.3f] | %d | %.3f | %.3f |\n", bin.GetLower(), bin.GetUpper(), bin.GetCount(), bin.GetConfidence(), bin.GetAccuracy())
		}
	}
	b.WriteString("\n![reliability diagram](reliability.png)\n")
	return b.String()
}

// binPoints returns the (confidence, accuracy) points of the non-empty bins and their counts.
func binPoints(bins []*plumbv1.ReliabilityBin) (plotter.XYs, []string) {
	var xy plotter.XYs
	var labels []string
	for _, b := range bins {
		if b.GetCount() == 0 {
			continue
		}
		xy = append(xy, plotter.XY{X: b.GetConfidence(), Y: b.GetAccuracy()})
		labels = append(labels, fmt.Sprintf("n=%d", b.GetCount()))
	}
	return xy, labels
}

// reliabilityPlot draws accuracy against confidence per bin, before and after, over the
// diagonal of perfect calibration, with the after bins' counts.
func reliabilityPlot(r *plumbv1.Report) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Reliability: %s (n=%d)", orDash(r.GetProfile().GetName()), r.GetExamples())
	p.X.Label.Text = "confidence (bin mean)"
	p.Y.Label.Text = "accuracy"
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1
	p.Add(plotter.NewGrid())
	diag, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}})
	if err != nil {
		return nil, err
	}
	diag.Dashes = []vg.Length{vg.Points(4), vg.Points(4)}
	diag.Color = color.Gray{Y: 120}
	p.Add(diag)
	p.Legend.Add("perfect calibration", diag)
	for _, s := range []struct {
		name  string
		bins  []*plumbv1.ReliabilityBin
		ece   float64
		col   color.Color
		shape draw.GlyphDrawer
	}{
		{"before", r.GetBinsBefore(), r.GetBefore().GetEce(), color.RGBA{R: 230, G: 120, B: 20, A: 255}, draw.BoxGlyph{}},
		{"after", r.GetBinsAfter(), r.GetAfter().GetEce(), color.RGBA{R: 20, G: 90, B: 200, A: 255}, draw.CircleGlyph{}},
	} {
		xy, labels := binPoints(s.bins)
		if len(xy) == 0 {
			continue
		}
		line, pts, err := plotter.NewLinePoints(xy)
		if err != nil {
			return nil, err
		}
		line.Color = s.col
		line.Width = vg.Points(1.5)
		pts.Color = s.col
		pts.Shape = s.shape
		pts.Radius = vg.Points(3.5)
		p.Add(line, pts)
		p.Legend.Add(fmt.Sprintf("%s (ECE %.3f)", s.name, s.ece), line, pts)
		if s.name == "after" {
			lab, err := plotter.NewLabels(plotter.XYLabels{XYs: xy, Labels: labels})
			if err != nil {
				return nil, err
			}
			for i := range lab.TextStyle {
				lab.TextStyle[i].Font.Size = vg.Points(7)
				lab.TextStyle[i].Color = s.col
			}
			lab.Offset = vg.Point{X: vg.Points(4), Y: vg.Points(-10)}
			p.Add(lab)
		}
	}
	p.Legend.Top = true
	p.Legend.Left = true
	return p, nil
}
