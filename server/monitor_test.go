package server

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/plumbhq/plumb/monitor"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/service"
)

func signer(t testing.TB, key string) *monitor.Signer {
	t.Helper()
	s, err := monitor.NewSigner([]byte(strings.Repeat(key, 32)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestMonitorEqualsEval: a profile fitted on the first 500 questions of testdata's MMLU file at ε = 0.6,
// the rest scored with receipts over gRPC and their labels fed back as outcomes: the monitor's
// ECE, Brier, coverage, answer rate and selective risk equal those of Evaluate on the same
// questions to 1e-9. A receipt sent again is a duplicate, not counted twice; an altered one is
// PermissionDenied naming the receipt, and nothing of its stream is stored.
func TestMonitorEqualsEval(t *testing.T) {
	h := start(t, Config{}, nil, service.Receipts(signer(t, "k")))
	ctx := context.Background()
	exs := mmluExamples(t)
	if _, err := h.c.Fit(ctx, &plumbv1.FitConfig{Name: "mmlu", Risk: 0.6, Activate: proto.Bool(true)}, seq(exs[:500])); err != nil {
		t.Fatal(err)
	}
	rest := exs[500:]
	var fb []*plumbv1.FeedbackRequest
	for _, ex := range rest {
		r := proto.CloneOf(ex.GetRequest())
		r.Profile, r.Segment = "mmlu", "web"
		resp, err := h.c.Score(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetReceipt() == "" {
			t.Fatal("a Score response without a receipt on a server with a receipt key")
		}
		fb = append(fb, &plumbv1.FeedbackRequest{Receipt: resp.GetReceipt(), Label: ex.GetLabel(),
			Source: plumbv1.FeedbackSource_FEEDBACK_SOURCE_GROUND_TRUTH})
	}
	send := func(reqs []*plumbv1.FeedbackRequest) (*plumbv1.FeedbackResponse, error) {
		stream, err := h.c.Monitor.FeedbackStream(ctx)
		if err != nil {
			return nil, err
		}
		for _, r := range reqs {
			if err := stream.Send(r); err != nil {
				return nil, err
			}
		}
		return stream.CloseAndRecv()
	}
	// An altered receipt among good ones: the whole stream is refused, nothing stored.
	forged := proto.CloneOf(fb[5])
	b := []byte(forged.Receipt)
	b[10] ^= 1
	forged.Receipt = string(b)
	_, err := send([]*plumbv1.FeedbackRequest{fb[0], fb[1], forged})
	if st := status.Convert(err); st.Code() != codes.PermissionDenied || !strings.Contains(st.Message(), "feedback[2].receipt") {
		t.Fatalf("a stream with an altered receipt: %v, want PermissionDenied naming feedback[2].receipt", err)
	}
	got, err := send(fb)
	if err != nil || got.GetAccepted() != int32(len(fb)) {
		t.Fatalf("feedback: %v, %v; want %d accepted", got, err, len(fb))
	}
	again, err := h.c.Monitor.Feedback(ctx, fb[0])
	if err != nil || again.GetAccepted() != 0 || again.GetDuplicates() != 1 {
		t.Fatalf("a receipt sent again: %v, %v; want 0 accepted, 1 duplicate", again, err)
	}

	mon, err := h.c.Monitor.GetMonitor(ctx, &plumbv1.GetMonitorRequest{Profile: "mmlu", Window: 1_000_000})
	if err != nil {
		t.Fatal(err)
	}
	if len(mon.GetMonitors()) != 1 {
		t.Fatalf("%d monitors, want 1 (mmlu@1, web)", len(mon.GetMonitors()))
	}
	m := mon.GetMonitors()[0]
	stream, err := h.c.Profiles.Evaluate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stream.Send(&plumbv1.EvaluateRequest{Message: &plumbv1.EvaluateRequest_Config{Config: &plumbv1.EvaluateConfig{Profile: "mmlu"}}})
	for _, ex := range rest {
		stream.Send(&plumbv1.EvaluateRequest{Message: &plumbv1.EvaluateRequest_Example{Example: ex}})
	}
	rep, err := stream.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	a := rep.GetAfter()
	t.Logf("monitor of %d outcomes: ECE %.4f, coverage %.4f, answer rate %.4f, selective risk %.4f in [%.4f, %.4f] against ε %.2f; alarms %v",
		m.GetOutcomes(), m.GetEce(), m.GetCoverage(), m.GetAnswerRate(), m.GetSelectiveRisk(), m.GetRiskLowerBound(), m.GetRiskBound(), m.GetRisk(), m.GetAlarms())
	if m.GetProfile() != "mmlu" || m.GetVersion() != 1 || m.GetSegment() != "web" || int(m.GetOutcomes()) != len(rest) {
		t.Errorf("monitor of %s@%d, segment %q, %d outcomes; want mmlu@1, web, %d", m.GetProfile(), m.GetVersion(), m.GetSegment(), m.GetOutcomes(), len(rest))
	}
	for _, c := range []struct {
		name          string
		monitor, eval float64
	}{
		{"ece", m.GetEce(), a.GetEce()},
		{"brier", m.GetBrier(), a.GetBrier()},
		{"coverage", m.GetCoverage(), a.GetCoverage()},
		{"answerRate", m.GetAnswerRate(), a.GetAnswerRate()},
		{"selectiveRisk", m.GetSelectiveRisk(), a.GetSelectiveError()},
	} {
		if math.Abs(c.monitor-c.eval) > 1e-9 {
			t.Errorf("%s: monitor %v, Evaluate %v", c.name, c.monitor, c.eval)
		}
	}
	if m.GetAnswered() == 0 {
		t.Fatal("nothing answered: the test shows nothing of the selective risk")
	}
	if !(m.GetRiskLowerBound() <= m.GetSelectiveRisk() && m.GetSelectiveRisk() <= m.GetRiskBound()) {
		t.Errorf("selective risk %v outside its bounds [%v, %v]", m.GetSelectiveRisk(), m.GetRiskLowerBound(), m.GetRiskBound())
	}
}

// TestFeedbackRefused: feedback that cannot count is refused naming its field — a receipt of
// another key (PermissionDenied), no receipt, no label, a label for claims; and a server
// without a receipt key issues no receipts and takes no feedback.
func TestFeedbackRefused(t *testing.T) {
	h := start(t, Config{}, nil, service.Receipts(signer(t, "k")))
	ctx := context.Background()
	exs := mmluExamples(t)
	resp, err := h.c.Score(ctx, exs[0].GetRequest())
	if err != nil {
		t.Fatal(err)
	}
	other := start(t, Config{}, nil, service.Receipts(signer(t, "o")))
	foreign, err := other.c.Score(ctx, exs[0].GetRequest())
	if err != nil {
		t.Fatal(err)
	}
	label := &plumbv1.Label{Answers: []string{"A"}}
	for _, tc := range []struct {
		name  string
		req   *plumbv1.FeedbackRequest
		code  codes.Code
		field string
	}{
		{"another key's receipt", &plumbv1.FeedbackRequest{Receipt: foreign.GetReceipt(), Label: label}, codes.PermissionDenied, "receipt"},
		{"no receipt", &plumbv1.FeedbackRequest{Label: label}, codes.InvalidArgument, "receipt"},
		{"not a receipt", &plumbv1.FeedbackRequest{Receipt: "r1.x.y", Label: label}, codes.InvalidArgument, "receipt"},
		{"no label", &plumbv1.FeedbackRequest{Receipt: resp.GetReceipt()}, codes.InvalidArgument, "label.answers"},
		{"claims for a short answer", &plumbv1.FeedbackRequest{Receipt: resp.GetReceipt(), Label: &plumbv1.Label{Claims: []plumbv1.ClaimVerdict{1}}}, codes.InvalidArgument, "label.claims"},
		{"an unknown source", &plumbv1.FeedbackRequest{Receipt: resp.GetReceipt(), Label: label, Source: 9}, codes.InvalidArgument, "source"},
	} {
		_, err := h.c.Monitor.Feedback(ctx, tc.req)
		if f := fieldOf(status.Convert(err).Details()); status.Code(err) != tc.code || f != tc.field {
			t.Errorf("%s: %v (field %q), want %v on %q", tc.name, err, f, tc.code, tc.field)
		}
	}
	plain := start(t, Config{}, nil)
	r, err := plain.c.Score(ctx, exs[0].GetRequest())
	if err != nil || r.GetReceipt() != "" {
		t.Errorf("a server without a key: receipt %q, %v; want none", r.GetReceipt(), err)
	}
	if _, err := plain.c.Monitor.Feedback(ctx, &plumbv1.FeedbackRequest{Receipt: resp.GetReceipt(), Label: label}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("feedback to a server without a key: %v, want FailedPrecondition", err)
	}
}

// TestRiskAlarmOnRealData: a profile fitted at ε = 0.3 on half of the two subjects the model
// knows best in testdata's MMLU file (marketing, high-school biology). Fed the other half of its
// own subjects with their labels, it raises no risk alarm. Fed the four other subjects with
// three labels in four moved to another option — the model's accuracy cut at the same confidence,
// a shift a real deployment meets when its users ask what it was not fitted on and the answers
// go wrong — its selective error exceeds ε by more than the confidence sequence's width and
// "risk_guarantee_violated" fires. (With their true labels the four other subjects do not violate
// ε here: the confidence map answers few of them, at a selective error of 0.15 at ε = 0.2.)
func TestRiskAlarmOnRealData(t *testing.T) {
	h := start(t, Config{}, nil, service.Receipts(signer(t, "k")))
	ctx := context.Background()
	var fit, own, others []*plumbv1.LabeledExample
	for i, ex := range mmluExamples(t) {
		switch g := ex.GetRequest().GetGroup(); {
		case g != "marketing" && g != "high_school_biology":
			others = append(others, ex)
		case i%2 == 0:
			fit = append(fit, ex)
		default:
			own = append(own, ex)
		}
	}
	resp, err := h.c.Fit(ctx, &plumbv1.FitConfig{Name: "known", Risk: 0.3, Activate: proto.Bool(true)}, seq(fit))
	if err != nil || resp.GetProfile().GetLambda() >= 1 {
		t.Fatalf("fit: λ %v, %v; want a profile that answers", resp.GetProfile().GetLambda(), err)
	}
	moved := func(i int, ex *plumbv1.LabeledExample) *plumbv1.Label {
		if i%4 == 3 {
			return ex.GetLabel()
		}
		// Another option than the right one: the next label in the wording's order.
		opts := ex.GetRequest().GetParaphrases()[0].GetOptions()
		for j, o := range opts {
			if slices.Contains(ex.GetLabel().GetAnswers(), o.GetLabel()) {
				return &plumbv1.Label{Answers: []string{opts[(j+1)%len(opts)].GetLabel()}}
			}
		}
		return ex.GetLabel()
	}
	for segment, exs := range map[string][]*plumbv1.LabeledExample{"own": own, "shifted": others} {
		for i, ex := range exs {
			r := proto.CloneOf(ex.GetRequest())
			r.Profile, r.Segment, r.Group = "known", segment, "" // unseen groups: the global quantile
			s, err := h.c.Score(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			label := ex.GetLabel()
			if segment == "shifted" {
				label = moved(i, ex)
			}
			if _, err := h.c.Monitor.Feedback(ctx, &plumbv1.FeedbackRequest{Receipt: s.GetReceipt(), Label: label}); err != nil {
				t.Fatal(err)
			}
		}
	}
	mon, err := h.c.Monitor.GetMonitor(ctx, &plumbv1.GetMonitorRequest{Profile: "known"})
	if err != nil {
		t.Fatal(err)
	}
	alarms := map[string][]string{}
	for _, m := range mon.GetMonitors() {
		t.Logf("%s: %d outcomes, %d answered, selective risk %.3f in [%.3f, %.3f] against ε %.2f; alarms %v",
			m.GetSegment(), m.GetOutcomes(), m.GetAnswered(), m.GetSelectiveRisk(), m.GetRiskLowerBound(), m.GetRiskBound(), m.GetRisk(), m.GetAlarms())
		alarms[m.GetSegment()] = m.GetAlarms()
	}
	if !slices.Contains(alarms["shifted"], "risk_guarantee_violated") {
		t.Error("after the shift, the profile raised no risk alarm")
	}
	if slices.Contains(alarms["own"], "risk_guarantee_violated") {
		t.Error("used on its own subjects, the profile raised the risk alarm")
	}
}

// TestMonitorMetrics: after outcomes come back, the plumb_monitor_* gauges carry the monitor's
// numbers by profile, version and segment, and plumb_monitor_alarm is 0 or 1 per alarm.
func TestMonitorMetrics(t *testing.T) {
	h := start(t, Config{}, nil, service.Receipts(signer(t, "k")))
	ctx := context.Background()
	exs := mmluExamples(t)
	if _, err := h.c.Fit(ctx, &plumbv1.FitConfig{Name: "m", Risk: 0.6, Activate: proto.Bool(true)}, seq(exs[:500])); err != nil {
		t.Fatal(err)
	}
	for _, ex := range exs[500:600] {
		r := proto.CloneOf(ex.GetRequest())
		r.Profile, r.Segment = "m", "beta"
		s, err := h.c.Score(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.c.Monitor.Feedback(ctx, &plumbv1.FeedbackRequest{Receipt: s.GetReceipt(), Label: ex.GetLabel()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.srv.refreshMonitors(ctx); err != nil {
		t.Fatal(err)
	}
	mon, err := h.c.Monitor.GetMonitor(ctx, &plumbv1.GetMonitorRequest{})
	if err != nil {
		t.Fatal(err)
	}
	m := mon.GetMonitors()[0]
	text := scrapeText(t, h)
	for _, want := range []string{
		`plumb_monitor_outcomes{profile="m",segment="beta",version="1"} 100`,
		fmt.Sprintf(`plumb_monitor_ece{profile="m",segment="beta",version="1"} %v`, m.GetEce()),
		fmt.Sprintf(`plumb_monitor_risk_upper_bound{profile="m",segment="beta",version="1"} %v`, m.GetRiskBound()),
		`plumb_monitor_alarm{alarm="risk_guarantee_violated",profile="m",segment="beta",version="1"} 0`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics has no line %s", want)
		}
	}
}
