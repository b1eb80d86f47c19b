package server

import (
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/plumbhq/plumb/api"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/simulate"
)

// scrapeText reads the server's /metrics text.
func scrapeText(t *testing.T, h *harness) string {
	t.Helper()
	srv := httptest.NewServer(h.srv.MetricsHandler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// scrape reads the server's /metrics as Prometheus would.
func scrape(t *testing.T, h *harness) map[string]*dto.MetricFamily {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(scrapeText(t, h)))
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// value returns the value of the series of family name with these labels (a counter, gauge,
// or a histogram's count), or NaN.
func value(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return math.NaN()
	}
next:
	for _, m := range f.GetMetric() {
		for k, v := range labels {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return math.NaN()
}

// TestDecisionMetrics: as the demo does — a profile fitted on simulated questions, held-out
// ones scored, over gRPC and HTTP — then a scrape: plumb's series count what the responses say,
// action by action, reason by reason, flag by flag; the version served and the fit are there.
func TestDecisionMetrics(t *testing.T) {
	h := start(t, Config{}, nil)
	ctx := context.Background()
	var fit, held []*plumbv1.LabeledExample
	for ex := range simulate.All(&simulate.Config{Questions: 1200, Seed: 5, Stance: 1}) {
		m := api.Labeled(&ex)
		if len(fit) < 1000 {
			fit = append(fit, m)
		} else {
			held = append(held, m)
		}
	}
	if _, err := h.c.Fit(ctx, &plumbv1.FitConfig{Name: "demo"}, seq(fit)); err != nil {
		t.Fatal(err)
	}
	actions := map[string]float64{}
	reasons := map[string]float64{}
	var flagged, setSizes float64
	for i, ex := range held {
		r := ex.GetRequest()
		r.Profile = "demo"
		var resp *plumbv1.ScoreResponse
		var err error
		if i%2 == 0 {
			resp, err = h.c.Score(ctx, r)
		} else {
			b, _ := protojsonMarshal(r)
			code, body := post(t, h.http+"/plumb.v1.ConfidenceService/Score", string(b))
			if code != http.StatusOK {
				t.Fatalf("HTTP %d: %s", code, body)
			}
			resp = new(plumbv1.ScoreResponse)
			err = protojsonUnmarshal(body, resp)
		}
		if err != nil {
			t.Fatal(err)
		}
		actions[strings.TrimPrefix(resp.GetAction().String(), "ACTION_")]++
		for _, reason := range resp.GetReasons() {
			reasons[strings.TrimPrefix(reason.String(), "REASON_")]++
		}
		if resp.GetSycophancy().GetFlagged() {
			flagged++
		}
		setSizes += float64(len(resp.GetPredictionSet().GetAnswers()))
	}
	h.c.Score(ctx, &plumbv1.ScoreRequest{Profile: "demo"}) // refused: counted by grpc-go, not as a decision
	fams := scrape(t, h)
	for action, n := range actions {
		if got := value(fams, "plumb_score_actions_total", map[string]string{"profile": "demo", "action": action}); got != n {
			t.Errorf("plumb_score_actions_total{action=%q} = %v, want %v", action, got, n)
		}
	}
	for reason, n := range reasons {
		if got := value(fams, "plumb_score_reasons_total", map[string]string{"profile": "demo", "reason": reason}); got != n {
			t.Errorf("plumb_score_reasons_total{reason=%q} = %v, want %v", reason, got, n)
		}
	}
	if got := value(fams, "plumb_score_sycophancy_flagged_total", map[string]string{"profile": "demo"}); flagged > 0 && got != flagged {
		t.Errorf("plumb_score_sycophancy_flagged_total = %v, want %v", got, flagged)
	}
	if flagged == 0 {
		t.Errorf("no held-out question was flagged: the check of the sycophancy series cannot fail")
	}
	for _, hist := range []string{"plumb_score_confidence", "plumb_score_set_size"} {
		if got := value(fams, hist, map[string]string{"profile": "demo"}); got != float64(len(held)) {
			t.Errorf("%s count = %v, want %d", hist, got, len(held))
		}
	}
	if got := fams["plumb_score_set_size"].GetMetric()[0].GetHistogram().GetSampleSum(); got != setSizes {
		t.Errorf("plumb_score_set_size sum = %v, want %v", got, setSizes)
	}
	if got := value(fams, "plumb_profile_version_served", map[string]string{"profile": "demo"}); got != 1 {
		t.Errorf("plumb_profile_version_served = %v, want 1", got)
	}
	if got := value(fams, "plumb_fits_total", map[string]string{"outcome": "stored"}); got != 1 {
		t.Errorf("plumb_fits_total{outcome=stored} = %v, want 1", got)
	}
	if got := value(fams, "plumb_fit_duration_seconds", map[string]string{"outcome": "stored"}); got != 1 {
		t.Errorf("plumb_fit_duration_seconds count = %v, want 1", got)
	}
	if got := value(fams, "plumb_rpc_handled_total", map[string]string{"transport": "http", "method": "/plumb.v1.ConfidenceService/Score", "code": "OK"}); got != float64(len(held)/2) {
		t.Errorf("plumb_rpc_handled_total over HTTP = %v, want %d", got, len(held)/2)
	}
	if len(actions) < 2 {
		t.Errorf("held-out questions all got one action %v: the per-action check is weak", actions)
	}
}

// TestBucketBoundsAreDecimals: every histogram's `le` label in /metrics is a short decimal, as
// an operator writes it in a query (0.3, not 0.30000000000000004 from summing 0.1s).
func TestBucketBoundsAreDecimals(t *testing.T) {
	h := start(t, Config{}, nil)
	exs, _ := simulate.Generate(&simulate.Config{Questions: 1, Seed: 1})
	if _, err := h.c.Score(context.Background(), api.Labeled(&exs[0]).GetRequest()); err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, line := range strings.Split(scrapeText(t, h), "\n") {
		j := strings.Index(line, `,le="`)
		if !strings.Contains(line, "_bucket{") || j < 0 {
			j = strings.Index(line, `{le="`)
		}
		if !strings.Contains(line, "_bucket{") || j < 0 {
			continue
		}
		le := line[j+5:]
		le = le[:strings.IndexByte(le, '"')]
		seen++
		if le != "+Inf" && len(le) > 6 {
			t.Errorf("bucket bound %q in %s", le, line)
		}
	}
	if seen == 0 {
		t.Fatal("no histogram buckets in /metrics")
	}
}
