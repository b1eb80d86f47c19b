package server

import (
	"context"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
)

// monitorEvery is how often the plumb_monitor_* gauges are recomputed from the stored outcomes.
const monitorEvery = time.Minute

// monitorGauges export GetMonitor's monitors as Prometheus gauges, by profile, version,
// segment and answers (short, or long: claims) (at most 100 segments a version, so the series stay bounded by the stored versions).
type monitorGauges struct {
	values map[string]*prometheus.GaugeVec
	alarm  *prometheus.GaugeVec
}

var monitorValues = []struct {
	name, help string
	get        func(*plumbv1.Monitor) float64
}{
	{"outcomes", "Outcomes fed back in the window.", func(m *plumbv1.Monitor) float64 { return float64(m.GetOutcomes()) }},
	{"ece", "Expected calibration error of the outcomes, or of long answers' judged claims (15 equal-width bins).", (*plumbv1.Monitor).GetEce},
	{"ece_lower", "Lower end of the ECE's interval at level 1 − δ.", (*plumbv1.Monitor).GetEceLower},
	{"ece_upper", "Upper end of the ECE's interval at level 1 − δ.", (*plumbv1.Monitor).GetEceUpper},
	{"coverage", "Fraction of outcomes whose prediction set held an acceptable answer.", (*plumbv1.Monitor).GetCoverage},
	{"target_coverage", "1 − α of the profile.", (*plumbv1.Monitor).GetTargetCoverage},
	{"answer_rate", "Fraction of outcomes answered (ANSWER).", (*plumbv1.Monitor).GetAnswerRate},
	{"selective_risk", "Errors among answered outcomes.", (*plumbv1.Monitor).GetSelectiveRisk},
	{"risk", "The risk ε the answers were given under.", (*plumbv1.Monitor).GetRisk},
	{"risk_lower_bound", "Lower bound of the anytime-valid confidence sequence for the selective risk (level δ).", (*plumbv1.Monitor).GetRiskLowerBound},
	{"risk_upper_bound", "Upper bound of the anytime-valid confidence sequence for the selective risk (level δ).", (*plumbv1.Monitor).GetRiskBound},
	{"sycophancy_rate", "Fraction of outcomes flagged for sycophancy.", (*plumbv1.Monitor).GetSycophancyRate},
	{"sycophancy_baseline", "Fraction flagged for sycophancy of the version × segment's first 2000 outcomes.", (*plumbv1.Monitor).GetSycophancyBaseline},
	{"calibration_gap", "Mean confidence minus accuracy (> 0: overconfident).", (*plumbv1.Monitor).GetCalibrationGap},
	{"exchangeability", "The conformal test martingale of the outcomes' scores against the calibration split's (calibration_drift at 1/δ).", (*plumbv1.Monitor).GetExchangeability},
	{"exchangeability_max", "The martingale's largest value so far.", (*plumbv1.Monitor).GetExchangeabilityMax},
	{"served_sycophancy_rate", "Fraction of outcomes where the product served the user's stance and plumb's answer differed.", (*plumbv1.Monitor).GetServedSycophancyRate},
}

// monitorAlarms are the alarms a monitor may raise.
var monitorAlarms = []string{"risk_guarantee_violated", "coverage_below_target", "calibration_drift", "miscalibrated", "sycophancy_rising"}

func newMonitorGauges(reg prometheus.Registerer) *monitorGauges {
	g := &monitorGauges{values: map[string]*prometheus.GaugeVec{}}
	labels := []string{"profile", "version", "segment", "answers"}
	for _, v := range monitorValues {
		g.values[v.name] = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "plumb_monitor_" + v.name, Help: v.help}, labels)
		reg.MustRegister(g.values[v.name])
	}
	g.alarm = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "plumb_monitor_alarm",
		Help: "1 while the alarm fires (risk_guarantee_violated, coverage_below_target, calibration_drift, miscalibrated, sycophancy_rising), else 0."}, append(labels, "alarm"))
	reg.MustRegister(g.alarm)
	return g
}

// set replaces the gauges with the monitors'; a metric a monitor cannot define (NaN) is left out.
func (g *monitorGauges) set(ms []*plumbv1.Monitor) {
	for _, v := range g.values {
		v.Reset()
	}
	g.alarm.Reset()
	for _, m := range ms {
		answers := "short"
		if m.GetLongAnswers() {
			answers = "long"
		}
		lv := []string{m.GetProfile(), strconv.FormatInt(m.GetVersion(), 10), m.GetSegment(), answers}
		for _, v := range monitorValues {
			if x := v.get(m); !math.IsNaN(x) {
				g.values[v.name].WithLabelValues(lv...).Set(x)
			}
		}
		for _, a := range monitorAlarms {
			on := 0.0
			if slices.Contains(m.GetAlarms(), a) {
				on = 1
			}
			g.alarm.WithLabelValues(append(lv, a)...).Set(on)
		}
	}
}

// refreshMonitors recomputes the gauges now.
func (s *Server) refreshMonitors(ctx context.Context) error {
	resp, err := s.svc.Monitor(ctx, &plumbv1.GetMonitorRequest{})
	if err != nil {
		return err
	}
	s.monitors.set(resp.GetMonitors())
	return nil
}

// watchMonitors recomputes the gauges every monitorEvery until ctx is done, when receipts are
// on (without them no outcome can come back).
func (s *Server) watchMonitors(ctx context.Context) {
	if !s.svc.ReceiptsOn() {
		return
	}
	t := time.NewTicker(monitorEvery)
	defer t.Stop()
	for {
		if err := s.refreshMonitors(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("computing the monitors failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
