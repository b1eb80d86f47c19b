// Package service is what every front end of plumb calls: the gRPC server, and the CLI when it
// works in-process on a store. It keeps a cache of the profiles in the store, scores, fits and
// evaluates through the engine (package calibrate), converts between the API's protobuf
// messages and the engine's types, encodes profiles for the store, and maps every error to a
// gRPC status (Status), so that all front ends accept and refuse the same things with the same
// words.
package service

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/plumbhq/plumb/calibrate"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/store"
)

// DefaultProfile is the name of the profile used when a request names none. Until a profile of
// that name is stored, it is the engine's built-in uncalibrated default.
const DefaultProfile = "default"

// Service is plumb's service over a profile store. It is safe for concurrent use.
type Service struct {
	store store.Store
	now   func() time.Time

	cache profileCache
	// maxStreamBytes caps the memory one Fit or Evaluate holds for its examples (0: no cap).
	maxStreamBytes int64
}

// An Option configures a Service.
type Option func(*Service)

// MaxStreamBytes caps the memory one Fit or Evaluate may hold for its examples, as the engine
// estimates it (calibrate.Fitter.Bytes, calibrate.Evaluator.Bytes); past it the call is refused
// with ResourceExhausted. 0, the default, means no cap.
func MaxStreamBytes(n int64) Option { return func(s *Service) { s.maxStreamBytes = n } }

// New returns a Service over st.
func New(st store.Store, opts ...Option) *Service {
	s := &Service{store: st, now: time.Now}
	s.cache.init()
	for _, o := range opts {
		o(s)
	}
	return s
}

// held refuses a stream whose examples hold more than the cap.
func (s *Service) held(what string, examples int, bytes int64) error {
	if s.maxStreamBytes > 0 && bytes > s.maxStreamBytes {
		return &calibrate.Error{Kind: calibrate.Exhausted, Field: "examples", Msg: fmt.Sprintf(
			"the %s holds %d bytes after %d examples, past this server's cap of %d bytes (plumb serve --max-stream-bytes): send fewer examples, or raise the cap",
			what, bytes, examples, s.maxStreamBytes)}
	}
	return nil
}

// decodeProfile decodes a stored version; the store's record says which version it is and
// whether it is active.
func decodeProfile(rec store.Record) (*plumbv1.Profile, error) {
	var m plumbv1.Profile
	if err := proto.Unmarshal(rec.Data, &m); err != nil {
		slog.Error("service: a stored profile does not decode", "name", rec.Name, "version", rec.Version, "err", err)
		return nil, fmt.Errorf("%w: profile %q version %d does not decode", store.ErrDamaged, rec.Name, rec.Version)
	}
	m.Version, m.Active = rec.Version, rec.Active
	return &m, nil
}

// Score scores one request.
func (s *Service) Score(ctx context.Context, r *plumbv1.ScoreRequest) (*plumbv1.ScoreResponse, error) {
	q := QuestionFrom(r)
	return s.ScoreQuestion(ctx, &q)
}

// ScoreQuestion scores a question already in the engine's types (the CLI decodes files
// straight into them) under the profile it names.
func (s *Service) ScoreQuestion(ctx context.Context, q *calibrate.Question) (*plumbv1.ScoreResponse, error) {
	p, err := s.Profile(ctx, q.Profile, q.ProfileVersion)
	if err != nil {
		return nil, err
	}
	res, err := calibrate.ScoreContext(ctx, p, q)
	if err != nil {
		return nil, err
	}
	return ResponseFrom(&res), nil
}

// Examples converts a stream of LabeledExamples to the engine's examples, naming the position
// of an empty one.
func Examples(examples iter.Seq2[*plumbv1.LabeledExample, error]) iter.Seq2[calibrate.Example, error] {
	return func(yield func(calibrate.Example, error) bool) {
		i := 0
		for ex, err := range examples {
			if err == nil && ex == nil {
				err = &calibrate.Error{Kind: calibrate.InvalidInput, Field: "examples[" + strconv.Itoa(i) + "]", Msg: "empty example"}
			}
			if err != nil {
				yield(calibrate.Example{}, err)
				return
			}
			if !yield(ExampleFrom(ex), nil) {
				return
			}
			i++
		}
	}
}

// Fitting is a fit under way: an engine Fitter collecting examples, whose profile is stored,
// and whose response comes out in the API's terms, when it runs. Front ends that decode examples
// themselves feed it directly (Add, or shards filled on their own goroutines and merged in
// order); Fit feeds it from a stream of messages.
type Fitting struct {
	*calibrate.Fitter
	s    *Service
	cfg  *plumbv1.FitConfig
	name string
}

// NewFitting starts a fit for cfg, refusing a bad name or config before any example is read.
// progress, when not nil, is told each stage of the fit as it begins
// (calibrate.FitConfig.Progress).
func (s *Service) NewFitting(ctx context.Context, cfg *plumbv1.FitConfig, progress func(stage string)) (*Fitting, error) {
	name, err := fitName(cfg)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		cfg = &plumbv1.FitConfig{}
	}
	ec := FitConfigFrom(cfg)
	ec.Name = name
	ec.Progress = func(stage string) error {
		if progress != nil {
			progress(stage)
		}
		return ctx.Err()
	}
	f, err := calibrate.NewFitter(&ec)
	if err != nil {
		return nil, err
	}
	return &Fitting{Fitter: f, s: s, cfg: cfg, name: name}, nil
}

// Add adds one example, and refuses it (ResourceExhausted) once the fit holds more than the
// service's cap.
func (f *Fitting) Add(ctx context.Context, ex *calibrate.Example) error {
	if err := f.Fitter.Add(ctx, ex); err != nil {
		return err
	}
	return f.Held()
}

// Held returns the error of a fit that holds more than the service's cap, else nil.
func (f *Fitting) Held() error { return f.s.held("fit", f.Len(), f.Bytes()) }

// Fit fits a profile from examples, stores it unless cfg.dry_run, and returns it with its
// report. Nothing is written unless the whole fit succeeds.
func (s *Service) Fit(ctx context.Context, cfg *plumbv1.FitConfig, examples iter.Seq2[*plumbv1.LabeledExample, error]) (*plumbv1.FitResponse, error) {
	f, err := s.NewFitting(ctx, cfg, nil)
	if err != nil {
		return nil, err // before reading the examples
	}
	for ex, err := range Examples(examples) {
		if err != nil {
			return nil, err
		}
		if err := f.Add(ctx, &ex); err != nil {
			return nil, err
		}
	}
	return f.Run(ctx)
}

// fitName returns the profile name a fit writes ("default" when the config names none), or
// the error for a name the store refuses.
func fitName(cfg *plumbv1.FitConfig) (string, error) {
	name := cfg.GetName()
	if name == "" {
		name = DefaultProfile
	}
	return name, checkName("config.name", name)
}

// requireName refuses, naming field, an empty profile name or one no profile can have.
func requireName(field, name string) error {
	if name == "" {
		return &calibrate.Error{Kind: calibrate.InvalidInput, Field: field, Msg: "a profile name is required"}
	}
	return checkName(field, name)
}

// checkName refuses a profile name no profile can have, naming field; empty names pass (they
// mean "default" or "every profile"). A refused name is quoted to at most 64 bytes, so a client
// never gets a huge name echoed back.
func checkName(field, name string) error {
	if name == "" {
		return nil
	}
	if err := store.CheckName(name); err != nil {
		return &calibrate.Error{Kind: calibrate.InvalidInput, Field: field, Msg: strings.TrimPrefix(err.Error(), store.ErrBadName.Error()+" ")}
	}
	return nil
}

// Run fits the profile on the examples added, stores it unless the config says dry_run, and
// returns it with its report. A cancelled ctx stops the fit between stages, and nothing is
// written.
func (f *Fitting) Run(ctx context.Context) (*plumbv1.FitResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, rep, err := f.Fitter.Fit(ctx)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err // cancelled while fitting: write nothing
	}
	s, cfg := f.s, f.cfg
	p.CreatedUnix = s.now().Unix()
	msg := ProfileToProto(p, cfg)
	resp := &plumbv1.FitResponse{Profile: msg, Report: ReportToProto(rep)}
	if cfg.GetDryRun() {
		return resp, nil
	}
	data, err := encodeProfile(msg)
	if err != nil {
		return nil, err
	}
	rec, err := s.store.Put(ctx, f.name, data, cfg.GetActivate())
	if err != nil {
		return nil, err
	}
	s.changed(store.Change{Name: f.name})
	msg.Version, msg.Active = rec.Version, rec.Active
	resp.Report.Profile.Version = rec.Version
	if msg.Report != nil {
		msg.Report.Profile.Version = rec.Version
	}
	resp.Stored = true
	return resp, nil
}

// Evaluation is an evaluation of one profile on labelled examples: an engine Evaluator whose
// report comes out in the API's terms. Front ends that decode examples themselves feed it
// directly (Add, or shards filled on their own goroutines and merged in order); Evaluate feeds
// it from a stream of messages.
type Evaluation struct {
	*calibrate.Evaluator
	s *Service
}

// Held returns the error of an evaluation that holds more than the service's cap, else nil.
func (e *Evaluation) Held() error { return e.s.held("evaluation", e.Len(), e.Bytes()) }

// NewEvaluation starts an evaluation of the profile cfg names.
func (s *Service) NewEvaluation(ctx context.Context, cfg *plumbv1.EvaluateConfig) (*Evaluation, error) {
	if _, ok := plumbv1.Equivalence_name[int32(cfg.GetEquivalence())]; !ok {
		return nil, &calibrate.Error{Kind: calibrate.InvalidInput, Field: "config.equivalence", Msg: fmt.Sprintf("unknown mode %d", cfg.GetEquivalence())}
	}
	if err := checkName("config.profile", cfg.GetProfile()); err != nil {
		return nil, err
	}
	p, err := s.Profile(ctx, cfg.GetProfile(), cfg.GetVersion())
	if err != nil {
		return nil, err
	}
	return &Evaluation{calibrate.NewEvaluator(p, calibrate.Equivalence(cfg.GetEquivalence())), s}, nil
}

// Report returns the evaluation's report, or FailedPrecondition when it has no example.
func (e *Evaluation) Report() (*plumbv1.Report, error) {
	if e.Len() == 0 {
		return nil, &calibrate.Error{Kind: calibrate.Precondition, Field: "examples", Msg: "no examples"}
	}
	return ReportToProto(e.Evaluator.Report()), nil
}

// evalBatch is how many examples Evaluate converts and scores at a time.
const evalBatch = 4096

// Evaluate reports a profile on labelled examples; it writes nothing. Examples stream through
// in batches: memory grows by a small record per question, not by the questions.
func (s *Service) Evaluate(ctx context.Context, cfg *plumbv1.EvaluateConfig, examples iter.Seq2[*plumbv1.LabeledExample, error]) (*plumbv1.Report, error) {
	ev, err := s.NewEvaluation(ctx, cfg)
	if err != nil {
		return nil, err
	}
	batch := make([]calibrate.Example, 0, evalBatch)
	for ex, err := range Examples(examples) {
		if err != nil {
			return nil, err
		}
		if batch = append(batch, ex); len(batch) == evalBatch {
			if err := ev.AddContext(ctx, batch); err != nil {
				return nil, err
			}
			if err := ev.Held(); err != nil {
				return nil, err
			}
			batch = batch[:0]
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
	}
	if err := ev.AddContext(ctx, batch); err != nil {
		return nil, err
	}
	return ev.Report()
}

// profileMessage decodes a stored version, without its report and risk curve unless full.
func profileMessage(rec store.Record, full bool) (*plumbv1.Profile, error) {
	m, err := decodeProfile(rec)
	if err != nil {
		return nil, err
	}
	if !full {
		m.Report, m.RiskCurve = nil, nil
	}
	return m, nil
}

// GetProfile returns one stored version (0: active); "default" without a stored profile is the
// built-in one.
func (s *Service) GetProfile(ctx context.Context, r *plumbv1.GetProfileRequest) (*plumbv1.GetProfileResponse, error) {
	if err := checkName("name", r.GetName()); err != nil {
		return nil, err
	}
	name := r.GetName()
	if name == "" {
		name = DefaultProfile
	}
	rec, err := s.store.Get(ctx, name, r.GetVersion())
	if errors.Is(err, store.ErrNotFound) && name == DefaultProfile && r.GetVersion() == 0 {
		m := ProfileToProto(calibrate.Default(), nil)
		m.Active = true
		return &plumbv1.GetProfileResponse{Profile: m}, nil
	}
	if err != nil {
		return nil, s.explain(ctx, name, r.GetVersion(), err)
	}
	m, err := profileMessage(rec, true)
	if err != nil {
		return nil, err
	}
	return &plumbv1.GetProfileResponse{Profile: m}, nil
}

// ListProfiles lists stored versions without reports and curves.
func (s *Service) ListProfiles(ctx context.Context, r *plumbv1.ListProfilesRequest) (*plumbv1.ListProfilesResponse, error) {
	if err := checkName("name", r.GetName()); err != nil {
		return nil, err
	}
	recs, err := s.store.List(ctx, r.GetName())
	if err != nil {
		return nil, err
	}
	out := &plumbv1.ListProfilesResponse{}
	for _, rec := range recs {
		err := rec.Err
		var m *plumbv1.Profile
		if err == nil {
			m, err = profileMessage(rec, false)
		}
		if err != nil {
			// One damaged version fails alone: the listing names it beside the others.
			m = &plumbv1.Profile{Name: rec.Name, Version: rec.Version, Error: "cannot be read: the stored record is damaged"}
		}
		out.Profiles = append(out.Profiles, m)
	}
	return out, nil
}

// ActivateProfile makes a version active.
func (s *Service) ActivateProfile(ctx context.Context, r *plumbv1.ActivateProfileRequest) (*plumbv1.ActivateProfileResponse, error) {
	if err := requireName("name", r.GetName()); err != nil {
		return nil, err
	}
	if r.GetVersion() <= 0 {
		return nil, &calibrate.Error{Kind: calibrate.InvalidInput, Field: "version", Msg: "a version ≥ 1 is required"}
	}
	rec, err := s.store.Activate(ctx, r.GetName(), r.GetVersion())
	if err != nil {
		return nil, s.explain(ctx, r.GetName(), r.GetVersion(), err)
	}
	s.changed(store.Change{Name: r.GetName()})
	m, err := profileMessage(rec, false)
	if err != nil {
		return nil, err
	}
	return &plumbv1.ActivateProfileResponse{Profile: m}, nil
}

// DeleteProfile deletes a version or a whole name.
func (s *Service) DeleteProfile(ctx context.Context, r *plumbv1.DeleteProfileRequest) (*plumbv1.DeleteProfileResponse, error) {
	if err := requireName("name", r.GetName()); err != nil {
		return nil, err
	}
	n, err := s.store.Delete(ctx, r.GetName(), r.GetVersion())
	if err != nil {
		return nil, s.explain(ctx, r.GetName(), r.GetVersion(), err)
	}
	s.deleted(r.GetName(), r.GetVersion())
	return &plumbv1.DeleteProfileResponse{Deleted: int32(n)}, nil
}
