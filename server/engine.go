package server

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/plumbhq/plumb/calibrate"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/store"
)

// DefaultProfile is the name of the profile used when a request names none. Until a profile of
// that name is stored, it is the engine's built-in uncalibrated default.
const DefaultProfile = "default"

// Engine is plumb's service logic over a store, in proto terms: the gRPC handlers and the CLI's
// in-process mode both call it, so they accept and refuse the same things.
type Engine struct {
	store store.Store
	now   func() time.Time

	mu     sync.Mutex
	cache  map[profileKey]*calibrate.Profile // immutable versions
	active map[string]activeEntry
}

type profileKey struct {
	name    string
	version int64
}

type activeEntry struct {
	version int64
	checked time.Time
}

// activeTTL bounds how long a cached active version is trusted when another process may have
// activated another one on the same store.
const activeTTL = time.Second

// NewEngine returns an Engine over s.
func NewEngine(s store.Store) *Engine {
	return &Engine{store: s, now: time.Now, cache: map[profileKey]*calibrate.Profile{}, active: map[string]activeEntry{}}
}

// Profile returns the engine profile name@version (0: active). The name "default" without a
// stored profile is the built-in uncalibrated one.
func (e *Engine) Profile(ctx context.Context, name string, version int64) (*calibrate.Profile, error) {
	if name == "" {
		name = DefaultProfile
	}
	e.mu.Lock()
	if version == 0 {
		if a, ok := e.active[name]; ok && e.now().Sub(a.checked) < activeTTL {
			version = a.version
		}
	}
	if version != 0 {
		if p, ok := e.cache[profileKey{name, version}]; ok {
			e.mu.Unlock()
			return p, nil
		}
	}
	e.mu.Unlock()
	rec, err := e.store.Get(ctx, name, version)
	if errors.Is(err, store.ErrNotFound) && name == DefaultProfile && version == 0 {
		return calibrate.Default(), nil
	}
	if err != nil {
		return nil, err
	}
	p, err := decodeProfile(rec)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.cache[profileKey{name, rec.Version}] = p
	if rec.Active {
		e.active[name] = activeEntry{version: rec.Version, checked: e.now()}
	}
	e.mu.Unlock()
	return p, nil
}

func decodeProfile(rec store.Record) (*calibrate.Profile, error) {
	var m plumbv1.Profile
	if err := proto.Unmarshal(rec.Data, &m); err != nil {
		return nil, fmt.Errorf("decode profile %s@%d: %w", rec.Name, rec.Version, err)
	}
	m.Version, m.Active = rec.Version, rec.Active
	return ProfileFromProto(&m), nil
}

func (e *Engine) forget(name string) {
	e.mu.Lock()
	delete(e.active, name)
	e.mu.Unlock()
}

// Score scores one request.
func (e *Engine) Score(ctx context.Context, r *plumbv1.ScoreRequest) (*plumbv1.ScoreResponse, error) {
	p, err := e.Profile(ctx, r.GetProfile(), r.GetProfileVersion())
	if err != nil {
		return nil, err
	}
	q := QuestionFrom(r)
	res, err := calibrate.Score(p, &q)
	if err != nil {
		return nil, err
	}
	return ResponseFrom(&res), nil
}

// collect drains examples into engine examples, naming the position of a bad one.
func collect(examples iter.Seq2[*plumbv1.LabeledExample, error]) ([]calibrate.Example, error) {
	var out []calibrate.Example
	for ex, err := range examples {
		if err != nil {
			return nil, err
		}
		if ex == nil {
			return nil, &calibrate.Error{Kind: calibrate.InvalidInput, Field: "examples[" + strconv.Itoa(len(out)) + "]", Msg: "empty example"}
		}
		out = append(out, ExampleFrom(ex))
	}
	return out, nil
}

// Fit fits a profile from examples, stores it unless cfg.dry_run, and returns it with its
// report. Nothing is written unless the whole fit succeeds.
func (e *Engine) Fit(ctx context.Context, cfg *plumbv1.FitConfig, examples iter.Seq2[*plumbv1.LabeledExample, error]) (*plumbv1.FitResponse, error) {
	if _, err := fitName(cfg); err != nil {
		return nil, err // before reading the examples
	}
	exs, err := collect(examples)
	if err != nil {
		return nil, err
	}
	return e.FitExamples(ctx, cfg, exs)
}

// fitName returns the profile name a fit writes ("default" when the config names none), or
// the error for a name the store refuses.
func fitName(cfg *plumbv1.FitConfig) (string, error) {
	name := cfg.GetName()
	if name == "" {
		name = DefaultProfile
	}
	if !store.NamePattern.MatchString(name) {
		return "", &calibrate.Error{Kind: calibrate.InvalidInput, Field: "config.name", Msg: fmt.Sprintf("%q does not match %s", name, store.NamePattern)}
	}
	return name, nil
}

// FitExamples is Fit on examples already in the engine's types (the CLI decodes files
// straight into them).
func (e *Engine) FitExamples(ctx context.Context, cfg *plumbv1.FitConfig, exs []calibrate.Example) (*plumbv1.FitResponse, error) {
	name, err := fitName(cfg)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		cfg = &plumbv1.FitConfig{}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ec := FitConfigFrom(cfg)
	ec.Name = name
	p, rep, err := calibrate.Fit(exs, &ec)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err // cancelled while fitting: write nothing
	}
	p.CreatedUnix = e.now().Unix()
	msg := ProfileToProto(p, cfg)
	resp := &plumbv1.FitResponse{Profile: msg, Report: ReportToProto(rep)}
	if cfg.GetDryRun() {
		return resp, nil
	}
	data, err := proto.Marshal(msg)
	if err != nil {
		return nil, err
	}
	rec, err := e.store.Put(ctx, name, data, cfg.GetActivate())
	if err != nil {
		return nil, err
	}
	e.forget(name)
	msg.Version, msg.Active = rec.Version, rec.Active
	resp.Report.Profile.Version = rec.Version
	if msg.Report != nil {
		msg.Report.Profile.Version = rec.Version
	}
	resp.Stored = true
	return resp, nil
}

// evalBatch is how many examples Evaluate converts and scores at a time.
const evalBatch = 4096

// Evaluate reports a profile on labelled examples; it writes nothing. Examples stream through
// in batches: memory grows by a small record per question, not by the questions.
func (e *Engine) Evaluate(ctx context.Context, cfg *plumbv1.EvaluateConfig, examples iter.Seq2[*plumbv1.LabeledExample, error]) (*plumbv1.Report, error) {
	p, err := e.Profile(ctx, cfg.GetProfile(), cfg.GetVersion())
	if err != nil {
		return nil, err
	}
	ev := calibrate.NewEvaluator(p)
	batch := make([]calibrate.Example, 0, evalBatch)
	flush := func() error {
		err := ev.Add(batch)
		batch = batch[:0]
		return err
	}
	for ex, err := range examples {
		if err != nil {
			return nil, err
		}
		if ex == nil {
			return nil, &calibrate.Error{Kind: calibrate.InvalidInput, Field: "examples[" + strconv.Itoa(ev.Len()+len(batch)) + "]", Msg: "empty example"}
		}
		batch = append(batch, ExampleFrom(ex))
		if len(batch) == evalBatch {
			if err := flush(); err != nil {
				return nil, err
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if ev.Len() == 0 {
		return nil, &calibrate.Error{Kind: calibrate.Precondition, Field: "examples", Msg: "no examples"}
	}
	return ReportToProto(ev.Report()), nil
}

func (e *Engine) record(rec store.Record, full bool) (*plumbv1.Profile, error) {
	var m plumbv1.Profile
	if err := proto.Unmarshal(rec.Data, &m); err != nil {
		return nil, fmt.Errorf("decode profile %s@%d: %w", rec.Name, rec.Version, err)
	}
	m.Version, m.Active = rec.Version, rec.Active
	if !full {
		m.Report, m.RiskCurve = nil, nil
	}
	return &m, nil
}

// GetProfile returns one stored version (0: active); "default" without a stored profile is the
// built-in one.
func (e *Engine) GetProfile(ctx context.Context, r *plumbv1.GetProfileRequest) (*plumbv1.GetProfileResponse, error) {
	name := r.GetName()
	if name == "" {
		name = DefaultProfile
	}
	rec, err := e.store.Get(ctx, name, r.GetVersion())
	if errors.Is(err, store.ErrNotFound) && name == DefaultProfile && r.GetVersion() == 0 {
		m := ProfileToProto(calibrate.Default(), nil)
		m.Active = true
		return &plumbv1.GetProfileResponse{Profile: m}, nil
	}
	if err != nil {
		return nil, err
	}
	m, err := e.record(rec, true)
	if err != nil {
		return nil, err
	}
	return &plumbv1.GetProfileResponse{Profile: m}, nil
}

// ListProfiles lists stored versions without reports and curves.
func (e *Engine) ListProfiles(ctx context.Context, r *plumbv1.ListProfilesRequest) (*plumbv1.ListProfilesResponse, error) {
	recs, err := e.store.List(ctx, r.GetName())
	if err != nil {
		return nil, err
	}
	out := &plumbv1.ListProfilesResponse{}
	for _, rec := range recs {
		m, err := e.record(rec, false)
		if err != nil {
			return nil, err
		}
		out.Profiles = append(out.Profiles, m)
	}
	return out, nil
}

// ActivateProfile makes a version active.
func (e *Engine) ActivateProfile(ctx context.Context, r *plumbv1.ActivateProfileRequest) (*plumbv1.ActivateProfileResponse, error) {
	if r.GetVersion() <= 0 {
		return nil, &calibrate.Error{Kind: calibrate.InvalidInput, Field: "version", Msg: "a version ≥ 1 is required"}
	}
	rec, err := e.store.Activate(ctx, r.GetName(), r.GetVersion())
	if err != nil {
		return nil, err
	}
	e.forget(r.GetName())
	m, err := e.record(rec, false)
	if err != nil {
		return nil, err
	}
	return &plumbv1.ActivateProfileResponse{Profile: m}, nil
}

// DeleteProfile deletes a version or a whole name.
func (e *Engine) DeleteProfile(ctx context.Context, r *plumbv1.DeleteProfileRequest) (*plumbv1.DeleteProfileResponse, error) {
	n, err := e.store.Delete(ctx, r.GetName(), r.GetVersion())
	if err != nil {
		return nil, err
	}
	e.forget(r.GetName())
	e.mu.Lock()
	for k := range e.cache {
		if k.name == r.GetName() && (r.GetVersion() == 0 || k.version == r.GetVersion()) {
			delete(e.cache, k)
		}
	}
	e.mu.Unlock()
	return &plumbv1.DeleteProfileResponse{Deleted: int32(n)}, nil
}
