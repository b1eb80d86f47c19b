package main

import (
	"bufio"
	"context"

	"github.com/plumbhq/plumb/api"
	"github.com/plumbhq/plumb/internal/jsonl"
	"github.com/plumbhq/plumb/simulate"
	"google.golang.org/protobuf/proto"
)

func cmdSimulate(_ context.Context, args []string, std stdio) error {
	fs := newFlags("simulate", std)
	n := fs.Int("questions", 1000, "questions to generate")
	seed := fs.Uint64("seed", 1, "seed")
	samples := fs.Int("samples", 0, "sampled completions per wording (0: option logprobs)")
	wordings := fs.Int("wordings", 10, "neutral wordings per question")
	stance := fs.Int("stance", 0, "USER_STANCE wordings per question")
	tokens := fs.Int("tokens", 0, "tokens per sample (default 8 with --samples)")
	labeled := fs.Bool("labeled", false, "write LabeledExample lines (for fit and eval) instead of ScoreRequest lines")
	claims := fs.Int("claims", 0, "long answers of this many claims, with --samples passages a wording (default 10), instead of questions")
	judge := fs.Bool("judge", false, "long answers: give every sample a judge's support of each claim")
	stanceShare := fs.Float64("stance-share", 0, "the share of questions whose users state a belief (have the --stance wordings); 0: all")
	if _, err := fs.parse(args); err != nil {
		return err
	}
	out := bufio.NewWriterSize(std.out, 1<<16)
	defer out.Flush()
	var line []byte
	for ex := range simulate.All(&simulate.Config{Questions: *n, Seed: *seed, Samples: *samples, Wordings: *wordings, Stance: *stance, Tokens: *tokens,
		Claims: *claims, Judge: *judge, StanceShare: *stanceShare}) {
		var m proto.Message = api.Request(&ex.Question)
		if *labeled {
			m = api.Labeled(&ex)
		}
		var err error
		if line, err = jsonl.AppendMessage(line[:0], m); err != nil {
			return err
		}
		if _, err := out.Write(line); err != nil {
			return err
		}
	}
	return nil
}
