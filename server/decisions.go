package server

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
)

// decisions are plumb's own metrics, beside grpc-go's per-call series: what the server decided
// for every question it scored (over gRPC or HTTP) and how its fits went. Labels are bounded:
// profiles are the stored names a request named, actions and reasons the API's enums.
type decisions struct {
	actions    *prometheus.CounterVec
	reasons    *prometheus.CounterVec
	confidence *prometheus.HistogramVec
	setSize    *prometheus.HistogramVec
	sycophancy *prometheus.CounterVec
	version    *prometheus.GaugeVec
	fits       *prometheus.CounterVec
	fitSeconds *prometheus.HistogramVec
}

func newDecisions(reg prometheus.Registerer) *decisions {
	d := &decisions{
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plumb_score_actions_total",
			Help: "Questions scored, by profile and action (ANSWER, CLARIFY, ABSTAIN)."}, []string{"profile", "action"}),
		reasons: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plumb_score_reasons_total",
			Help: "Reasons given with the actions, by profile and reason."}, []string{"profile", "reason"}),
		confidence: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "plumb_score_confidence",
			Help:    "Grounded confidence of the answers scored, by profile.",
			Buckets: []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1}}, []string{"profile"}),
		setSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "plumb_score_set_size",
			Help:    "Size of the conformal prediction set, by profile.",
			Buckets: []float64{1, 2, 3, 4, 5, 8, 16}}, []string{"profile"}),
		sycophancy: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plumb_score_sycophancy_flagged_total",
			Help: "Questions whose user-stance wordings moved the answer past the profile's threshold, by profile."}, []string{"profile"}),
		version: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "plumb_profile_version_served",
			Help: "The profile version that scored the last question of each profile name (0: the built-in default)."}, []string{"profile"}),
		fits: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plumb_fits_total",
			Help: "Fits, by outcome (stored, dry_run, or the status code that refused them)."}, []string{"outcome"}),
		fitSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "plumb_fit_duration_seconds",
			Help:    "How long fits took, reading the examples included, by outcome.",
			Buckets: []float64{0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 51.2, 102.4}}, []string{"outcome"}),
	}
	reg.MustRegister(d.actions, d.reasons, d.confidence, d.setSize, d.sycophancy, d.version, d.fits, d.fitSeconds)
	return d
}

// scored records one answered ScoreResponse (not a refused request).
func (d *decisions) scored(r *plumbv1.ScoreResponse) {
	if r == nil || r.GetError() != nil {
		return
	}
	p := r.GetProfile().GetName()
	d.actions.WithLabelValues(p, strings.TrimPrefix(r.GetAction().String(), "ACTION_")).Inc()
	for _, reason := range r.GetReasons() {
		d.reasons.WithLabelValues(p, strings.TrimPrefix(reason.String(), "REASON_")).Inc()
	}
	d.confidence.WithLabelValues(p).Observe(r.GetConfidence())
	d.setSize.WithLabelValues(p).Observe(float64(len(r.GetPredictionSet().GetAnswers())))
	if r.GetSycophancy().GetFlagged() {
		d.sycophancy.WithLabelValues(p).Inc()
	}
	d.version.WithLabelValues(p).Set(float64(r.GetProfile().GetVersion()))
}

// fitted records a fit's outcome and duration.
func (d *decisions) fitted(resp *plumbv1.FitResponse, code codes.Code, began time.Time) {
	outcome := "stored"
	switch {
	case code != codes.OK:
		outcome = codes.Code(code).String()
	case !resp.GetStored():
		outcome = "dry_run"
	}
	d.fits.WithLabelValues(outcome).Inc()
	d.fitSeconds.WithLabelValues(outcome).Observe(time.Since(began).Seconds())
}

// calls count every call of either transport, by transport ("grpc" or "http"), full method
// name and status code, and time it: one definition of the per-call series for both.
type calls struct {
	handled *prometheus.CounterVec
	seconds *prometheus.HistogramVec
}

func newCalls(reg prometheus.Registerer) calls {
	c := calls{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "plumb_rpc_handled_total",
			Help: "Calls handled, by transport (grpc, http), method and status code."}, []string{"transport", "method", "code"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "plumb_rpc_handling_seconds",
			Help: "How long calls took, by transport and method.", Buckets: prometheus.DefBuckets}, []string{"transport", "method"}),
	}
	reg.MustRegister(c.handled, c.seconds)
	return c
}
