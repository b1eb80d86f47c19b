package service

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/plumbhq/plumb/api"
	"github.com/plumbhq/plumb/calibrate"
	"github.com/plumbhq/plumb/monitor"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/store"
)

// Feedback's bounds.
const (
	// MaxFeedbackBatch is the most outcomes one FeedbackStream stores, all or none.
	MaxFeedbackBatch = 100_000
	// MaxFeedbackText is the longest served answer or acceptable answer, in bytes.
	MaxFeedbackText = 4096
	// MaxFeedbackAnswers is the most acceptable answers of one outcome.
	MaxFeedbackAnswers = 64
	// MaxMonitorWindow is the largest window of GetMonitor.
	MaxMonitorWindow = 10_000_000
)

// Receipts turns receipts on: each Score response carries one, signed by signer.
func Receipts(signer *monitor.Signer) Option { return func(s *Service) { s.signer = signer } }

// ReceiptsOn reports whether Score responses carry receipts.
func (s *Service) ReceiptsOn() bool { return s.signer != nil }

// feedbackStore is the store as a FeedbackStore, or the reason it is not one.
func (s *Service) feedbackStore() (store.FeedbackStore, error) {
	fs, ok := s.store.(store.FeedbackStore)
	if !ok {
		return nil, &calibrate.Error{Kind: calibrate.Precondition, Msg: "this server stores nothing (--profile-file): feedback needs a store (--store)"}
	}
	return fs, nil
}

// Feedback checks each outcome's receipt and label and stores them all, or none: a forged,
// altered or expired receipt is PermissionDenied, one of a version the store does not hold
// NotFound, a bad label InvalidArgument, each naming its item ("feedback[i].receipt"). A receipt
// stored before counts as a duplicate, not again. Feedback never changes a profile.
func (s *Service) Feedback(ctx context.Context, reqs []*plumbv1.FeedbackRequest) (*plumbv1.FeedbackResponse, error) {
	return s.feedback(ctx, reqs, func(i int) string { return "feedback[" + strconv.Itoa(i) + "]." })
}

// FeedbackOne is Feedback of one outcome, whose errors name its fields as they are ("receipt").
func (s *Service) FeedbackOne(ctx context.Context, r *plumbv1.FeedbackRequest) (*plumbv1.FeedbackResponse, error) {
	return s.feedback(ctx, []*plumbv1.FeedbackRequest{r}, func(int) string { return "" })
}

// feedback is Feedback with item i's fields prefixed by prefix(i).
func (s *Service) feedback(ctx context.Context, reqs []*plumbv1.FeedbackRequest, prefix func(i int) string) (*plumbv1.FeedbackResponse, error) {
	if s.signer == nil {
		return nil, &calibrate.Error{Kind: calibrate.Precondition, Field: "receipt",
			Msg: "receipts are off on this server: start it with --receipt-key-file to issue and take them"}
	}
	fs, err := s.feedbackStore()
	if err != nil {
		return nil, err
	}
	if len(reqs) > MaxFeedbackBatch {
		return nil, &calibrate.Error{Kind: calibrate.Exhausted, Field: "feedback",
			Msg: fmt.Sprintf("%d outcomes in one stream, at most %d: send more streams", len(reqs), MaxFeedbackBatch)}
	}
	now := s.now()
	batch := make([]store.Feedback, 0, len(reqs))
	for i, r := range reqs {
		f, err := s.outcome(ctx, r, now)
		if err != nil {
			return nil, calibrate.Within(prefix(i), err)
		}
		batch = append(batch, f)
	}
	n, err := fs.AddFeedback(ctx, batch)
	if err != nil {
		return nil, fault(err)
	}
	if s.aci.step != 0 {
		s.aci.applied(batch, n == len(batch))
	}
	return &plumbv1.FeedbackResponse{Accepted: int32(n), Duplicates: int32(len(batch) - n)}, nil
}

// bad is a refused outcome's error, of kind, naming field.
func bad(kind calibrate.ErrorKind, field, format string, args ...any) error {
	return &calibrate.Error{Kind: kind, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// outcome checks one FeedbackRequest and makes its stored form.
func (s *Service) outcome(ctx context.Context, r *plumbv1.FeedbackRequest, now time.Time) (store.Feedback, error) {
	if r.GetReceipt() == "" {
		return store.Feedback{}, bad(calibrate.InvalidInput, "receipt", "a receipt is required: the ScoreResponse's, as it was")
	}
	b, err := s.signer.Open(r.GetReceipt())
	if err != nil {
		kind := calibrate.Denied
		if errors.Is(err, monitor.ErrBadForm) {
			kind = calibrate.InvalidInput
		}
		return store.Feedback{}, bad(kind, "receipt", "%v", err)
	}
	var p *calibrate.Profile
	if b.GetVersion() > 0 {
		if p, err = s.Profile(ctx, b.GetProfile(), b.GetVersion()); err != nil {
			if api.FaultOf(err).Code == codes.NotFound {
				return store.Feedback{}, bad(calibrate.NotFound, "receipt", "profile %s version %d is not stored (deleted?): its outcomes cannot be watched", b.GetProfile(), b.GetVersion())
			}
			return store.Feedback{}, err
		}
	}
	label, err := checkLabel(b, r.GetLabel())
	if err != nil {
		return store.Feedback{}, err
	}
	if a := r.GetServedAnswer(); len(a) > MaxFeedbackText || !utf8.ValidString(a) {
		return store.Feedback{}, bad(calibrate.InvalidInput, "served_answer", "%d bytes: at most %d of UTF-8", len(a), MaxFeedbackText)
	}
	if _, ok := plumbv1.FeedbackSource_name[int32(r.GetSource())]; !ok {
		return store.Feedback{}, bad(calibrate.InvalidInput, "source", "unknown source %d", r.GetSource())
	}
	o := &plumbv1.Outcome{Receipt: b, Label: label, ServedAnswer: r.GetServedAnswer(),
		Source: r.GetSource(), ReceivedUnix: now.Unix()}
	data, err := proto.Marshal(o)
	if err != nil {
		return store.Feedback{}, err
	}
	f := store.Feedback{ID: hex.EncodeToString(b.GetId()), Profile: b.GetProfile(), Received: now, Data: data}
	if s.aci.step != 0 {
		f.ACI = s.aciStep(p, b, monitor.Judge(o).Covered)
	}
	return f, nil
}

// checkLabel checks an outcome's label against its receipt b and returns what is stored of
// it: a long answer's verdicts, one per claim and one TRUE or FALSE at least, or a short
// answer's acceptable answers.
func checkLabel(b *plumbv1.ReceiptBody, l *plumbv1.Label) (*plumbv1.Label, error) {
	invalid := func(field, format string, args ...any) error {
		return bad(calibrate.InvalidInput, field, format, args...)
	}
	if claims := len(b.GetClaimConfidences()); claims > 0 {
		switch {
		case len(l.GetAnswers()) > 0:
			return nil, invalid("label.answers", "the receipt is a long answer's: give label.claims, a verdict per claim")
		case len(l.GetClaims()) != claims:
			return nil, invalid("label.claims", "%d verdicts for the receipt's %d claims: give one per claim, in the request's order (CLAIM_VERDICT_UNSPECIFIED for one not judged)", len(l.GetClaims()), claims)
		}
		vs, err := api.Verdicts(l.GetClaims())
		if err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(vs, func(v calibrate.ClaimVerdict) bool { return v != calibrate.ClaimUnknown }) {
			return nil, invalid("label.claims", "no claim judged: give CLAIM_VERDICT_TRUE or CLAIM_VERDICT_FALSE for at least one")
		}
		return &plumbv1.Label{Claims: l.GetClaims()}, nil
	}
	switch {
	case len(l.GetClaims()) > 0:
		return nil, invalid("label.claims", "the receipt is a short answer's: give label.answers")
	case len(l.GetAnswers()) == 0:
		return nil, invalid("label.answers", "no acceptable answer: give the answers that would have been right")
	case len(l.GetAnswers()) > MaxFeedbackAnswers:
		return nil, bad(calibrate.Exhausted, "label.answers", "%d answers, at most %d", len(l.GetAnswers()), MaxFeedbackAnswers)
	}
	for j, a := range l.GetAnswers() {
		if len(a) > MaxFeedbackText || !utf8.ValidString(a) {
			return nil, invalid("label.answers["+strconv.Itoa(j)+"]", "%d bytes: at most %d of UTF-8", len(a), MaxFeedbackText)
		}
	}
	return &plumbv1.Label{Answers: l.GetAnswers()}, nil
}

// Monitor computes the monitors of the stored outcomes (of r.profile, or every profile's).
func (s *Service) Monitor(ctx context.Context, r *plumbv1.GetMonitorRequest) (*plumbv1.GetMonitorResponse, error) {
	if err := checkName("profile", r.GetProfile()); err != nil {
		return nil, err
	}
	if w := r.GetWindow(); w < 0 || w > MaxMonitorWindow {
		return nil, &calibrate.Error{Kind: calibrate.InvalidInput, Field: "window", Msg: fmt.Sprintf("%d: want 0 (the default, %d) to %d", w, monitor.DefaultWindow, MaxMonitorWindow)}
	}
	fs, err := s.feedbackStore()
	if err != nil {
		return nil, err
	}
	b := monitor.NewBuilder(int(r.GetWindow()))
	b.Reference = func(profile string, version int64) []float64 {
		if version == 0 {
			return nil // scored under the default: nothing to test against
		}
		p, err := s.Profile(ctx, profile, version)
		if err != nil {
			return nil // deleted
		}
		return p.CalibrationScores
	}
	var o plumbv1.Outcome
	err = fs.EachFeedback(ctx, r.GetProfile(), func(f store.Feedback) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		o.Reset()
		if err := proto.Unmarshal(f.Data, &o); err != nil {
			return fmt.Errorf("%w: feedback %s does not decode", store.ErrDamaged, f.ID)
		}
		p := monitor.Judge(&o)
		b.Add(&p)
		return nil
	})
	if err != nil {
		return nil, fault(err)
	}
	return &plumbv1.GetMonitorResponse{Monitors: b.Monitors()}, nil
}

// DropFeedback deletes the outcomes that arrived more than retention ago, and returns how many.
func (s *Service) DropFeedback(ctx context.Context, retention time.Duration) (int, error) {
	fs, err := s.feedbackStore()
	if err != nil {
		return 0, nil // nothing is stored
	}
	return fs.DropFeedback(ctx, s.now().Add(-retention))
}

// Refit fits a new version of r.name from the outcomes fed back for one of its versions: the
// confidence map, λ and the quantiles (calibrate.Refit), or for a claims profile the claim map
// and τ (calibrate.RefitClaims), on the outcomes received since r.since_unix. It is stored
// inactive unless r.activate, with its report: before (the version the outcomes came from) and
// after, on a held-out tenth of them.
func (s *Service) Refit(ctx context.Context, r *plumbv1.RefitRequest) (*plumbv1.FitResponse, error) {
	if err := requireName("name", r.GetName()); err != nil {
		return nil, err
	}
	if err := checkFitID("fit_id", r.GetFitId()); err != nil {
		return nil, err
	}
	fs, err := s.feedbackStore()
	if err != nil {
		return nil, err
	}
	p, err := s.Profile(ctx, r.GetName(), r.GetVersion())
	if err != nil {
		return nil, err
	}
	since := time.Unix(r.GetSinceUnix(), 0)
	var rows []calibrate.RefitRow
	var claimRows []calibrate.ClaimRefitRow
	var o plumbv1.Outcome
	err = fs.EachFeedback(ctx, r.GetName(), func(f store.Feedback) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if f.Received.Before(since) {
			return nil
		}
		o.Reset()
		if err := proto.Unmarshal(f.Data, &o); err != nil {
			return fmt.Errorf("%w: feedback %s does not decode", store.ErrDamaged, f.ID)
		}
		b := o.GetReceipt()
		if b.GetVersion() != p.Version {
			return nil
		}
		if p.Evidence == calibrate.EvidenceClaims {
			if len(b.GetClaimSupports()) > 0 {
				claimRows = append(claimRows, api.ClaimRefitRow(&o))
			}
			return nil
		}
		if len(b.GetMapFeatures()) < 2 {
			return nil
		}
		pt := monitor.Judge(&o)
		rows = append(rows, calibrate.RefitRow{Features: o.GetReceipt().GetMapFeatures(), Correct: pt.Correct,
			Covered: pt.Covered, SetSize: pt.SetSize, Action: pt.Action, Scored: pt.Scored, Score: pt.Score,
			Candidates: o.GetReceipt().GetCandidateScores(), Group: o.GetReceipt().GetGroup()})
		return nil
	})
	if err != nil {
		return nil, fault(err)
	}
	split := [3]float64{0.5, 0.4, 0.1}
	var q *calibrate.Profile
	var rep *calibrate.Report
	if p.Evidence == calibrate.EvidenceClaims {
		if q, rep, err = calibrate.RefitClaims(p, claimRows, calibrate.MapAuto, split, r.GetSeed(), 0); err != nil {
			return nil, err
		}
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("refitted from %d long answers of version %d: the claim map and τ are new", len(claimRows), p.Version))
	} else {
		if q, rep, err = calibrate.Refit(p, rows, calibrate.MapAuto, split, r.GetSeed(), 0); err != nil {
			return nil, err
		}
		kept := "the temperature and the quantiles are"
		if !slices.Equal(q.CalibrationScores, p.CalibrationScores) {
			kept = "the quantiles are new too; the temperature is"
		}
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("refitted from %d outcomes of version %d: the map and λ are new; %s version %d's",
			len(rows), p.Version, kept, p.Version))
	}
	q.CreatedUnix = s.now().Unix()
	msg := api.ProfileMessage(q, nil)
	resp := &plumbv1.FitResponse{Profile: msg, Report: api.Report(rep)}
	if r.GetDryRun() {
		return resp, nil
	}
	a := store.Inactive
	if r.GetActivate() {
		a = store.Activate
	}
	return s.storeFitted(ctx, r.GetName(), resp, a, r.GetFitId())
}

// Adaptive conformal inference (ACI): the bounds of its thresholds and how long a replica
// reads its copy of them before reading the store again.
const (
	// ACIMax holds a threshold at most here: LAC's and APS's scores are at most 1, RAPS's a
	// little more; above every score the set is every candidate.
	ACIMax = 2
	aciTTL = time.Second
)

// ACI turns adaptive conformal inference on with step γ: each outcome fed back moves its
// profile version × segment's threshold by γ(err − α) (err = 1 when the served set missed every
// acceptable answer), and Score serves sets at the moved threshold: the quantile-tracking form
// of Gibbs & Candès (2021), after Angelopoulos, Candès & Tibshirani (2023). Long-run coverage
// then stays at 1 − α when the data shift, at any step; a larger step follows a shift faster
// and sways more.
func ACI(step float64) Option { return func(s *Service) { s.aci.step = step } }

// aciState is a replica's copy of the stored thresholds.
type aciState struct {
	step float64 // 0: ACI is off
	mu   sync.Mutex
	read time.Time
	q    map[store.ACIKey]float64
}

// aciKey is q's threshold's key: its profile version and segment, or OtherSegment when the
// version has MaxSegments segments already.
func (a *aciState) key(profile string, version int64, segment string) store.ACIKey {
	k := store.ACIKey{Profile: profile, Version: version, Segment: segment}
	if _, ok := a.q[k]; ok {
		return k
	}
	n := 0
	for o := range a.q {
		if o.Profile == profile && o.Version == version {
			n++
		}
	}
	if n >= monitor.MaxSegments {
		k.Segment = monitor.OtherSegment
	}
	return k
}

// adaptive sets q's ACI threshold under p, when ACI is on and p is calibrated.
func (s *Service) adaptive(ctx context.Context, p *calibrate.Profile, q *calibrate.Question) error {
	a := &s.aci
	if a.step == 0 || !p.Calibrated || len(q.Claims) > 0 {
		return nil
	}
	fs, err := s.feedbackStore()
	if err != nil {
		return nil // no store, no feedback: the profile's quantile
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.q == nil || s.now().Sub(a.read) >= aciTTL {
		m, err := fs.ACI(ctx)
		if err != nil {
			return fault(err)
		}
		a.q, a.read = m, s.now()
	}
	thr, ok := a.q[a.key(p.Name, p.Version, q.Segment)]
	if !ok {
		thr = min(p.Quantiles.Global, ACIMax)
	}
	q.Adaptive, q.Threshold = true, thr
	return nil
}

// aciStep is the ACI step of outcome o, scored under p, or nil when ACI is off or p is not
// calibrated.
func (s *Service) aciStep(p *calibrate.Profile, b *plumbv1.ReceiptBody, covered bool) *store.ACIStep {
	a := &s.aci
	if a.step == 0 || p == nil || !p.Calibrated || len(b.GetClaimConfidences()) > 0 {
		return nil
	}
	err := 0.0
	if !covered {
		err = 1
	}
	a.mu.Lock()
	k := a.key(b.GetProfile(), b.GetVersion(), b.GetSegment())
	a.mu.Unlock()
	return &store.ACIStep{Key: k, Start: min(p.Quantiles.Global, ACIMax), Delta: a.step * (err - p.Alpha), Max: ACIMax}
}

// applied takes the steps of a batch just stored into the replica's copy, so that its next
// Score serves them; when some outcomes were duplicates (which took no step) it drops the copy
// instead, to be read again.
func (a *aciState) applied(fs []store.Feedback, allNew bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !allNew || a.q == nil {
		a.q = nil
		return
	}
	for _, f := range fs {
		if st := f.ACI; st != nil {
			q, ok := a.q[st.Key]
			if !ok {
				q = st.Start
			}
			a.q[st.Key] = min(max(q+st.Delta, 0), st.Max)
		}
	}
}
