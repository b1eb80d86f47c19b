package service

import (
	"context"
	"fmt"
	"iter"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/plumbhq/plumb/api"
	"github.com/plumbhq/plumb/calibrate"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/store"
)

// Fitting is a fit under way: an engine Fitter collecting examples, whose profile is stored,
// and whose response comes out in the API's terms, when it runs. Front ends that decode
// examples over several goroutines fill shards of it (NewShard, Merge); Add takes one example
// at a time, as a stream brings them.
type Fitting struct {
	f     *calibrate.Fitter
	s     *Service
	cfg   *plumbv1.FitConfig
	name  string
	shard *calibrate.FitShard // Add's
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
	if err := checkFitID("config.fit_id", cfg.GetFitId()); err != nil {
		return nil, err
	}
	ec, err := api.FitConfig(cfg)
	if err != nil {
		return nil, err
	}
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
	return &Fitting{f: f, s: s, cfg: cfg, name: name}, nil
}

// Add adds one example, naming it by its position (examples[i]) when the engine refuses it,
// and refuses it (ResourceExhausted) once the fit holds more than the service's cap.
func (f *Fitting) Add(ctx context.Context, ex *calibrate.Example) error {
	if f.shard == nil {
		f.shard = f.f.NewShard()
	}
	if err := f.shard.Add(ctx, ex); err != nil {
		return calibrate.Within("examples["+strconv.Itoa(f.f.Len())+"].", err)
	}
	if err := f.f.Merge(f.shard); err != nil {
		return err
	}
	return f.held()
}

// NewShard returns a shard of the fit, to be filled on one goroutine and merged in order.
func (f *Fitting) NewShard() *Shard {
	sh := f.f.NewShard()
	return &Shard{add: sh.Add, len: sh.Len, merge: func() error {
		if err := f.f.Merge(sh); err != nil {
			return err
		}
		return f.held()
	}}
}

// held returns the error of a fit that holds more than the service's cap, else nil.
func (f *Fitting) held() error { return f.s.held("fit", f.f.Len(), f.f.Bytes()) }

// A Shard is a run of examples added to a fit or an evaluation on one goroutine (the CLI's
// pipeline fills one per chunk of a file), merged into it in order.
type Shard struct {
	add   func(context.Context, *calibrate.Example) error
	len   func() int
	merge func() error
}

// Add validates ex and adds it; the error names the field relative to the example. A fit keeps
// a samples example as it is: ex must not change afterwards.
func (sh *Shard) Add(ctx context.Context, ex *calibrate.Example) error { return sh.add(ctx, ex) }

// Len returns the number of examples the shard holds.
func (sh *Shard) Len() int { return sh.len() }

// Merge merges a shard's examples into its fit or evaluation, after those merged before, and
// empties it; past the service's cap on what a fit or evaluation holds it is ResourceExhausted.
func (sh *Shard) Merge() error { return sh.merge() }

// Fit fits a profile from a stream of examples, stores it unless cfg.dry_run, and returns it
// with its report. Nothing is written unless the whole fit succeeds.
func (s *Service) Fit(ctx context.Context, cfg *plumbv1.FitConfig, examples iter.Seq2[calibrate.Example, error]) (*plumbv1.FitResponse, error) {
	f, err := s.NewFitting(ctx, cfg, nil)
	if err != nil {
		return nil, err // before reading the examples
	}
	for ex, err := range examples {
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

// checkFitID refuses a fit id longer than store.MaxFitID bytes or with a control character (it
// is echoed in logs and listings).
func checkFitID(field, id string) error {
	bad := func(msg string) error {
		return &calibrate.Error{Kind: calibrate.InvalidInput, Field: field, Msg: msg}
	}
	if len(id) > store.MaxFitID {
		return bad(fmt.Sprintf("%d bytes, at most %d (a UUID takes 36)", len(id), store.MaxFitID))
	}
	for _, r := range id {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return bad("a control character or invalid UTF-8: give printable text, such as a UUID")
		}
	}
	return nil
}

// activation says whether a fitted profile becomes active: as the config says, or, when it
// says nothing, when the profile answers something; why explains a profile stored inactive
// for that reason.
func activation(cfg *plumbv1.FitConfig, p *calibrate.Profile) (a store.Activation, why string) {
	if cfg.Activate != nil {
		if cfg.GetActivate() {
			return store.Activate, ""
		}
		return store.Inactive, ""
	}
	if p.Evidence == calibrate.EvidenceClaims && math.IsInf(p.ClaimThreshold, 1) {
		return store.Inactive, "stored inactive: τ = ∞, this profile keeps no claim; activate it anyway with activate = true (plumb fit --activate, or plumb profiles activate)"
	}
	if p.Evidence != calibrate.EvidenceClaims && p.Lambda >= 1 {
		return store.Inactive, "stored inactive: λ = 1, this profile answers nothing; activate it anyway with activate = true (plumb fit --activate, or plumb profiles activate)"
	}
	return store.Activate, ""
}

// Run fits the profile on the examples added, stores it unless the config says dry_run, and
// returns it with its report. A cancelled ctx stops the fit between stages, and nothing is
// written.
func (f *Fitting) Run(ctx context.Context) (*plumbv1.FitResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, rep, err := f.f.Fit(ctx)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err // cancelled while fitting: write nothing
	}
	s, cfg := f.s, f.cfg
	p.CreatedUnix = s.now().Unix()
	msg := api.ProfileMessage(p, cfg)
	resp := &plumbv1.FitResponse{Profile: msg, Report: api.Report(rep)}
	if cfg.GetDryRun() {
		return resp, nil
	}
	a, why := activation(cfg, p)
	if why != "" {
		// In the stored report too, so that GetProfile and a retried fit say it.
		resp.Report.Warnings = append(resp.Report.Warnings, why)
		if msg.Report != nil {
			msg.Report.Warnings = append(msg.Report.Warnings, why)
		}
	}
	return s.storeFitted(ctx, f.name, resp, a, cfg.GetFitId())
}

// storeFitted stores resp's profile as the next version of name, as a says and under fitID,
// and returns resp with the version, or, when fitID was stored before, that version's
// response as stored.
func (s *Service) storeFitted(ctx context.Context, name string, resp *plumbv1.FitResponse, a store.Activation, fitID string) (*plumbv1.FitResponse, error) {
	msg := resp.GetProfile()
	data, err := encodeProfile(msg)
	if err != nil {
		return nil, err
	}
	summary, err := summaryOf(msg)
	if err != nil {
		return nil, err
	}
	rec, err := s.store.Put(ctx, name, data, store.PutOptions{Activation: a, FitID: fitID, Summary: summary})
	if err != nil {
		return nil, fault(err)
	}
	if rec.Existing {
		// A retry of a fit already stored: answer with that version, as stored.
		old, err := profileMessage(rec, true)
		if err != nil {
			return nil, err
		}
		return &plumbv1.FitResponse{Profile: old, Report: old.GetReport(), Stored: true, Existing: true}, nil
	}
	s.changed(store.Change{Name: name})
	msg.Version, msg.Active = rec.Version, rec.Active
	if pr := resp.GetReport().GetProfile(); pr != nil {
		pr.Version = rec.Version
	}
	if pr := msg.GetReport().GetProfile(); pr != nil {
		pr.Version = rec.Version
	}
	resp.Stored = true
	return resp, nil
}
