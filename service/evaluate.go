package service

import (
	"context"
	"iter"
	"strconv"

	"github.com/plumbhq/plumb/api"
	"github.com/plumbhq/plumb/calibrate"
	"github.com/plumbhq/plumb/internal/parallel"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
)

// Evaluation is an evaluation of one profile on labelled examples: an engine Evaluator whose
// report comes out in the API's terms. Front ends that decode examples over several goroutines
// fill shards of it (NewShard, Merge); Evaluate feeds it from a stream.
type Evaluation struct {
	e *calibrate.Evaluator
	s *Service
}

// held returns the error of an evaluation that holds more than the service's cap, else nil.
func (e *Evaluation) held() error { return e.s.held("evaluation", e.e.Len(), e.e.Bytes()) }

// NewShard returns a shard of the evaluation, to be filled on one goroutine and merged in order.
func (e *Evaluation) NewShard() *Shard {
	sh := e.e.NewShard()
	return &Shard{add: sh.Add, len: sh.Len, merge: func() error {
		if err := e.e.Merge(sh); err != nil {
			return err
		}
		return e.held()
	}}
}

// NewEvaluation starts an evaluation of the profile cfg names.
func (s *Service) NewEvaluation(ctx context.Context, cfg *plumbv1.EvaluateConfig) (*Evaluation, error) {
	mode, err := api.EvaluateEquivalence(cfg)
	if err != nil {
		return nil, err
	}
	if err := checkName("config.profile", cfg.GetProfile()); err != nil {
		return nil, err
	}
	p, err := s.Profile(ctx, cfg.GetProfile(), cfg.GetVersion())
	if err != nil {
		return nil, err
	}
	return &Evaluation{calibrate.NewEvaluator(p, mode), s}, nil
}

// Report returns the evaluation's report, or FailedPrecondition when it has no example.
func (e *Evaluation) Report() (*plumbv1.Report, error) {
	if e.e.Len() == 0 {
		return nil, &calibrate.Error{Kind: calibrate.Precondition, Field: "examples", Msg: "no examples"}
	}
	return api.Report(e.e.Report()), nil
}

// evalBatch is how many examples Evaluate scores at a time, over the machine's cores.
const evalBatch = 4096

// Evaluate reports a profile on a stream of labelled examples; it writes nothing. Examples are
// scored in batches, each over the machine's cores in contiguous ranges whose shards are merged
// in order: memory grows by a small record per question, not by the questions.
func (s *Service) Evaluate(ctx context.Context, cfg *plumbv1.EvaluateConfig, examples iter.Seq2[calibrate.Example, error]) (*plumbv1.Report, error) {
	ev, err := s.NewEvaluation(ctx, cfg)
	if err != nil {
		return nil, err
	}
	batch := make([]calibrate.Example, 0, evalBatch)
	for ex, err := range examples {
		if err != nil {
			return nil, err
		}
		if batch = append(batch, ex); len(batch) == evalBatch {
			if err := ev.add(ctx, batch); err != nil {
				return nil, err
			}
			batch = batch[:0]
		}
	}
	if err := ev.add(ctx, batch); err != nil {
		return nil, err
	}
	return ev.Report()
}

// add scores a batch into shards, one per range of it, merged in order; it names a refused
// example by its position in the whole evaluation.
func (e *Evaluation) add(ctx context.Context, batch []calibrate.Example) error {
	first := e.e.Len()
	shards := make([]*calibrate.Shard, parallel.Workers(len(batch), 256))
	errs := make([]error, len(shards))
	for w := range shards {
		shards[w] = e.e.NewShard()
	}
	parallel.Ranges(len(batch), 256, func(w, lo, hi int) {
		for j := lo; j < hi; j++ {
			if err := shards[w].Add(ctx, &batch[j]); err != nil {
				errs[w] = calibrate.Within("examples["+strconv.Itoa(first+j)+"].", err)
				return
			}
		}
	})
	for w, sh := range shards {
		if errs[w] != nil {
			return errs[w]
		}
		if err := e.e.Merge(sh); err != nil {
			return err
		}
	}
	if err := e.held(); err != nil {
		return err
	}
	return ctx.Err()
}
