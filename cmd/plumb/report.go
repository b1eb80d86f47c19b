package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
)

// metricRows are the metrics a report shows, in order; a metric is absent (nil) where it is
// undefined, and shows as n/a.
// metricRow is a row of a metrics table: its name and how to read it from M.
type metricRow[M any] struct {
	name string
	get  func(M) *float64
}

var metricRows = []metricRow[*plumbv1.Metrics]{
	{"accuracy", func(m *plumbv1.Metrics) *float64 { return m.Accuracy }},
	{"ECE (15 bins)", func(m *plumbv1.Metrics) *float64 { return m.Ece }},
	{"adaptive ECE", func(m *plumbv1.Metrics) *float64 { return m.AdaptiveEce }},
	{"MCE", func(m *plumbv1.Metrics) *float64 { return m.Mce }},
	{"Brier", func(m *plumbv1.Metrics) *float64 { return m.Brier }},
	{"NLL", func(m *plumbv1.Metrics) *float64 { return m.Nll }},
	{"AUROC", func(m *plumbv1.Metrics) *float64 { return m.Auroc }},
	{"AURC", func(m *plumbv1.Metrics) *float64 { return m.Aurc }},
	{"coverage", func(m *plumbv1.Metrics) *float64 { return m.Coverage }},
	{"mean set size", func(m *plumbv1.Metrics) *float64 { return m.MeanSetSize }},
	{"singleton rate", func(m *plumbv1.Metrics) *float64 { return m.SingletonRate }},
	{"answer rate", func(m *plumbv1.Metrics) *float64 { return m.AnswerRate }},
	{"clarify rate", func(m *plumbv1.Metrics) *float64 { return m.ClarifyRate }},
	{"abstain rate", func(m *plumbv1.Metrics) *float64 { return m.AbstainRate }},
	{"selective error", func(m *plumbv1.Metrics) *float64 { return m.SelectiveError }},
	{"wording agreement", func(m *plumbv1.Metrics) *float64 { return m.WordingAgreement }},
	{"sycophancy shift", func(m *plumbv1.Metrics) *float64 { return m.SycophancyShift }},
}

// claimRows are the metrics of a claims report, in order.
var claimRows = []metricRow[*plumbv1.ClaimMetrics]{
	{"share of claims true", func(m *plumbv1.ClaimMetrics) *float64 { return m.Accuracy }},
	{"ECE (15 bins)", func(m *plumbv1.ClaimMetrics) *float64 { return m.Ece }},
	{"Brier", func(m *plumbv1.ClaimMetrics) *float64 { return m.Brier }},
	{"AUROC", func(m *plumbv1.ClaimMetrics) *float64 { return m.Auroc }},
	{"AUC-PR of false claims", func(m *plumbv1.ClaimMetrics) *float64 { return m.AucPrFalse }},
	{"answers whose kept claims are all true", func(m *plumbv1.ClaimMetrics) *float64 { return m.AllTrueRate }},
	{"claims kept", func(m *plumbv1.ClaimMetrics) *float64 { return m.KeptRate }},
}

// value prints a metric to the given decimals, or n/a where it is undefined.
func value(v *float64, decimals int) string {
	if v == nil {
		return "n/a"
	}
	return strconv.FormatFloat(*v, 'f', decimals, 64)
}

// summary prints the before/after table of a report, and what the fit chose and warns of.
func summary(w io.Writer, r *plumbv1.Report) {
	if c := r.GetClaims(); c != nil {
		claimSummary(w, r, c)
		return
	}
	fmt.Fprintf(w, "report on %d %s; temperature %s, confidence map %s, α = %.2f, λ = %.2f for ε = %.2f\n",
		r.GetExamples(), splitNote(r), orDash(r.GetTemperatureMethod()), orDash(r.GetConfidenceMapMethod()), r.GetAlpha(), r.GetLambda(), r.GetRisk())
	table(w, metricRows, r.GetBefore(), r.GetAfter())
	if why := r.GetConfidenceMapReason(); why != "" {
		fmt.Fprintln(w, "confidence map:", why)
	}
	for _, warning := range r.GetWarnings() {
		fmt.Fprintln(w, "warning:", warning)
	}
}

// table prints rows of metrics, before and after, right-aligned.
func table[M any](w io.Writer, rows []metricRow[M], before, after M) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "metric\tbefore\tafter\t")
	for _, m := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t\n", m.name, value(m.get(before), 4), value(m.get(after), 4))
	}
	tw.Flush()
}

// claimSummary prints the before/after table of a claims report.
func claimSummary(w io.Writer, r *plumbv1.Report, c *plumbv1.ClaimReport) {
	fmt.Fprintf(w, "report on %d claims of %d %s; claim map %s, α = %.2f, τ = %.4g (a claim is kept when its confidence exceeds τ; %d answers set it)\n",
		c.GetAfter().GetClaims(), c.GetPassages(), splitNote(r), orDash(c.GetMapMethod()), r.GetAlpha(), c.GetThreshold(), c.GetCalibratePassages())
	table(w, claimRows, c.GetBefore(), c.GetAfter())
	if why := c.GetMapReason(); why != "" {
		fmt.Fprintln(w, "claim map:", why)
	}
	for _, warning := range r.GetWarnings() {
		fmt.Fprintln(w, "warning:", warning)
	}
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
// checkReportDir makes dir and checks that a file can be written in it, before a command does
// its work: a fit must not store a version and then fail on its report.
func checkReportDir(dir string) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--report-dir: %w", err)
	}
	f, err := os.CreateTemp(dir, ".plumb-check-*")
	if err != nil {
		return fmt.Errorf("--report-dir: %w", err)
	}
	f.Close()
	return os.Remove(f.Name())
}

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
	return writeFigure(r, filepath.Join(dir, "reliability.png"), filepath.Join(dir, "reliability.svg"))
}

// markdown renders the report as tables: before/after overall and per group.
func markdown(r *plumbv1.Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# plumb report: %s v%d\n\n", orDash(r.GetProfile().GetName()), r.GetProfile().GetVersion())
	fmt.Fprintf(&b, "%d %s. Temperature: %s. Confidence map: %s. α = %.3g, global q̂ = %.4g, λ = %.2f for selective risk ε = %.3g.\n\n",
		r.GetExamples(), splitNote(r), orDash(r.GetTemperatureMethod()), orDash(r.GetConfidenceMapMethod()), r.GetAlpha(), r.GetQuantile(), r.GetLambda(), r.GetRisk())
	for _, warning := range r.GetWarnings() {
		fmt.Fprintf(&b, "**Warning:** %s.\n\n", warning)
	}
	if why := r.GetConfidenceMapReason(); why != "" {
		fmt.Fprintf(&b, "Confidence map: %s.\n\n", why)
	}
	if c := r.GetClaims(); c != nil {
		fmt.Fprintf(&b, "Long answers: %d labelled claims of %d answers. Claim map: %s. τ = %.4g, set on %d answers: a claim is kept when its confidence exceeds it.\n\n",
			c.GetAfter().GetClaims(), c.GetPassages(), orDash(c.GetMapMethod()), c.GetThreshold(), c.GetCalibratePassages())
		if why := c.GetMapReason(); why != "" {
			fmt.Fprintf(&b, "Claim map: %s.\n\n", why)
		}
		b.WriteString("Before: the support as confidence, claims kept above 0.5. After: the profile. n/a: undefined on these claims.\n\n")
		b.WriteString("| metric | before | after |\n|---|---:|---:|\n")
		for _, m := range claimRows {
			fmt.Fprintf(&b, "| %s | %s | %s |\n", m.name, value(m.get(c.GetBefore()), 4), value(m.get(c.GetAfter()), 4))
		}
	} else {
		b.WriteString("Before: the uncalibrated default (T = 1, c = π̄(k*)). After: the profile. n/a: undefined on these questions.\n\n")
		b.WriteString("| metric | before | after |\n|---|---:|---:|\n")
		for _, m := range metricRows {
			fmt.Fprintf(&b, "| %s | %s | %s |\n", m.name, value(m.get(r.GetBefore()), 4), value(m.get(r.GetAfter()), 4))
		}
	}
	if len(r.GetGroups()) > 0 {
		b.WriteString("\n## Per group\n\n| group | n | accuracy | ECE before | ECE after | coverage | mean set size | answer rate | selective error |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, g := range r.GetGroups() {
			a := g.GetAfter()
			fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s | %s |\n", g.GetGroup(), a.GetExamples(), value(a.Accuracy, 3),
				value(g.GetBefore().Ece, 4), value(a.Ece, 4), value(a.Coverage, 3), value(a.MeanSetSize, 2), value(a.AnswerRate, 3), value(a.SelectiveError, 3))
		}
	}
	b.WriteString("\n## Reliability (after)\n\n| bin | n | mean confidence | accuracy |\n|---|---:|---:|---:|\n")
	bins := r.GetBinsAfter()
	if c := r.GetClaims(); c != nil {
		bins = c.GetBinsAfter()
	}
	for _, bin := range bins {
		if bin.GetCount() > 0 {
			fmt.Fprintf(&b, "| (%.3f, %.3f] | %d | %.3f | %.3f |\n", bin.GetLower(), bin.GetUpper(), bin.GetCount(), bin.GetConfidence(), bin.GetAccuracy())
		}
	}
	b.WriteString("\n![reliability diagram](reliability.png)\n")
	return b.String()
}
