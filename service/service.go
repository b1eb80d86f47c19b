// Package service is what every front end of plumb calls: the server's transports, and the CLI
// when it works in-process on a store. It orchestrates the profile cache, the store and the
// engine: it scores, fits and evaluates in the engine's terms (package calibrate), stores
// fitted profiles (as the API's Profile messages, through package api) and manages their
// versions. Every error it returns is a *calibrate.Error — the engine's own, or a store's fault
// given its kind (fault) — or a context's, so that each front end answers it alike through
// api.FaultOf.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/plumbhq/plumb/api"
	"github.com/plumbhq/plumb/calibrate"
	"github.com/plumbhq/plumb/monitor"
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
	// signer signs Score's receipts and opens those fed back; nil: receipts are off.
	signer *monitor.Signer
	// aci is adaptive conformal inference's state (off unless the ACI option).
	aci aciState
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
			"the %s holds %d bytes after %d examples, past this server's cap of %d bytes on what one fit or evaluation holds: send fewer examples, or have the cap raised",
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
		return nil, fault(fmt.Errorf("%w: profile %q version %d does not decode", store.ErrDamaged, rec.Name, rec.Version))
	}
	m.Version, m.Active = rec.Version, rec.Active
	return &m, nil
}

// Score scores a question under the profile it names.
func (s *Service) Score(ctx context.Context, q *calibrate.Question) (calibrate.Result, error) {
	res, _, err := s.score(ctx, q)
	return res, err
}

// receiptBodies are ReceiptBodies to fill, sign and reuse.
var receiptBodies = sync.Pool{New: func() any { return new(plumbv1.ReceiptBody) }}

// ScoreWithReceipt is Score and the receipt of its result ("" when receipts are off).
func (s *Service) ScoreWithReceipt(ctx context.Context, q *calibrate.Question) (calibrate.Result, string, error) {
	res, p, err := s.score(ctx, q)
	if err != nil || s.signer == nil {
		return res, "", err
	}
	now := s.now()
	id := monitor.NewID(now)
	b := receiptBodies.Get().(*plumbv1.ReceiptBody)
	defer receiptBodies.Put(b)
	api.FillReceipt(b, q, &res, p, id[:], now.Unix())
	receipt, err := s.signer.Sign(b)
	return res, receipt, err
}

// score scores q and returns the profile it was scored under.
func (s *Service) score(ctx context.Context, q *calibrate.Question) (calibrate.Result, *calibrate.Profile, error) {
	p, err := s.Profile(ctx, q.Profile, q.ProfileVersion)
	if err != nil {
		return calibrate.Result{}, nil, err
	}
	if err := s.adaptive(ctx, p, q); err != nil {
		return calibrate.Result{}, nil, err
	}
	res, err := calibrate.Score(ctx, p, q)
	return res, p, err
}

// fault gives a store's error its kind, so that a front end can answer it: the store's
// messages never carry a server's paths or a panic's text. Other errors pass as they are.
func fault(err error) error {
	var kind calibrate.ErrorKind
	field := ""
	msg := ""
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		kind = calibrate.NotFound
	case errors.Is(err, store.ErrReadOnly), errors.Is(err, store.ErrActive):
		kind = calibrate.Precondition
	case errors.Is(err, store.ErrBadName):
		kind, field = calibrate.InvalidInput, "name"
	case errors.Is(err, store.ErrDamaged):
		kind = calibrate.DataLoss
	case errors.Is(err, store.ErrOutcomeUnknown):
		kind, msg = calibrate.OutcomeUnknown, store.ErrOutcomeUnknown.Error()
	case errors.Is(err, store.ErrFull):
		kind, msg = calibrate.Exhausted, store.ErrFull.Error()
	case errors.Is(err, store.ErrUnavailable):
		kind, msg = calibrate.Unavailable, store.ErrUnavailable.Error()
	default:
		return err
	}
	if msg == "" {
		msg = err.Error()
	}
	return &calibrate.Error{Kind: kind, Field: field, Msg: msg, Err: err}
}
