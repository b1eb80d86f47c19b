package main

import (
	"context"
	"flag"
	"fmt"
	"iter"
	"os"
	"runtime"
	"strings"
	"sync"

	"github.com/plumbhq/plumb/client"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/server"
	"github.com/plumbhq/plumb/store"
)

// backend is where a command's work happens: in-process on a store file, or on a server.
type backend interface {
	Score(context.Context, *plumbv1.ScoreRequest) (*plumbv1.ScoreResponse, error)
	ScoreAll(context.Context, iter.Seq[*plumbv1.ScoreRequest]) iter.Seq2[*plumbv1.ScoreResponse, error]
	Fit(context.Context, *plumbv1.FitConfig, iter.Seq2[*plumbv1.LabeledExample, error]) (*plumbv1.FitResponse, error)
	Evaluate(context.Context, *plumbv1.EvaluateConfig, iter.Seq2[*plumbv1.LabeledExample, error]) (*plumbv1.Report, error)
	GetProfile(context.Context, *plumbv1.GetProfileRequest) (*plumbv1.GetProfileResponse, error)
	ListProfiles(context.Context, *plumbv1.ListProfilesRequest) (*plumbv1.ListProfilesResponse, error)
	ActivateProfile(context.Context, *plumbv1.ActivateProfileRequest) (*plumbv1.ActivateProfileResponse, error)
	DeleteProfile(context.Context, *plumbv1.DeleteProfileRequest) (*plumbv1.DeleteProfileResponse, error)
	Close() error
}

// target holds the flags that choose a backend.
type target struct {
	server, store, token string
	streams              int
}

func (t *target) register(fs *flag.FlagSet) {
	fs.StringVar(&t.server, "server", "", "address of a plumb server (host:port); empty works in-process on --store")
	fs.StringVar(&t.store, "store", envOr("PLUMB_STORE", "plumb.db"), "profile store file for in-process work ($PLUMB_STORE)")
	fs.StringVar(&t.token, "token", os.Getenv("PLUMB_TOKEN"), "bearer token for --server ($PLUMB_TOKEN)")
	fs.IntVar(&t.streams, "streams", 2, "concurrent ScoreStream calls with --server")
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func (t *target) open() (backend, error) {
	if t.server != "" {
		c, err := client.Dial(t.server, &client.Options{Token: t.token})
		if err != nil {
			return nil, fmt.Errorf("client.Dial %s: %w", t.server, err)
		}
		return remote{c, t.streams}, nil
	}
	s, err := store.Open(t.store, 0)
	if err != nil {
		return nil, err
	}
	return local{server.NewEngine(s), s}, nil
}

// remote works through a server; ScoreAll spreads the requests over `streams` concurrent
// ScoreStream calls.
type remote struct {
	*client.Client
	streams int
}

func (r remote) ScoreAll(ctx context.Context, reqs iter.Seq[*plumbv1.ScoreRequest]) iter.Seq2[*plumbv1.ScoreResponse, error] {
	return r.ScoreConcurrent(ctx, reqs, r.streams, 256)
}

func (r remote) GetProfile(ctx context.Context, q *plumbv1.GetProfileRequest) (*plumbv1.GetProfileResponse, error) {
	return r.Profiles.GetProfile(ctx, q)
}

func (r remote) ListProfiles(ctx context.Context, q *plumbv1.ListProfilesRequest) (*plumbv1.ListProfilesResponse, error) {
	return r.Profiles.ListProfiles(ctx, q)
}

func (r remote) ActivateProfile(ctx context.Context, q *plumbv1.ActivateProfileRequest) (*plumbv1.ActivateProfileResponse, error) {
	return r.Profiles.ActivateProfile(ctx, q)
}

func (r remote) DeleteProfile(ctx context.Context, q *plumbv1.DeleteProfileRequest) (*plumbv1.DeleteProfileResponse, error) {
	return r.Profiles.DeleteProfile(ctx, q)
}

// local runs the engine in this process; its errors are the server's statuses, so both modes
// report the same codes and words.
type local struct {
	*server.Engine
	st store.Store
}

func (l local) Close() error { return l.st.Close() }

// scoreBatch is how many requests the in-process ScoreAll scores at a time over the cores.
const scoreBatch = 1024

// ScoreAll scores in batches over the machine's cores and yields in request order; memory is
// bounded by one batch.
func (l local) ScoreAll(ctx context.Context, reqs iter.Seq[*plumbv1.ScoreRequest]) iter.Seq2[*plumbv1.ScoreResponse, error] {
	return func(yield func(*plumbv1.ScoreResponse, error) bool) {
		batch := make([]*plumbv1.ScoreRequest, 0, scoreBatch)
		resps := make([]*plumbv1.ScoreResponse, scoreBatch)
		workers := runtime.GOMAXPROCS(0)
		flush := func() bool {
			var wg sync.WaitGroup
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					for i := w; i < len(batch); i += workers {
						resp, err := l.Engine.Score(ctx, batch[i])
						if err != nil {
							resp = itemError(batch[i].GetId(), err)
						}
						resps[i] = resp
					}
				}(w)
			}
			wg.Wait()
			for _, r := range resps[:len(batch)] {
				if !yield(r, nil) {
					return false
				}
			}
			batch = batch[:0]
			return ctx.Err() == nil
		}
		for r := range reqs {
			batch = append(batch, r)
			if len(batch) == scoreBatch && !flush() {
				return
			}
		}
		if len(batch) > 0 {
			flush()
		}
	}
}

// itemError is a refused request as ScoreStream reports it.
func itemError(id string, err error) *plumbv1.ScoreResponse {
	return &plumbv1.ScoreResponse{Id: id, Error: server.ItemError(err)}
}

// profileArg reads NAME and optional VERSION positional arguments.
func profileArg(args []string) (string, int64, error) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return "", 0, fmt.Errorf("a profile name is required")
	}
	var v int64
	if len(args) > 1 {
		if _, err := fmt.Sscan(args[1], &v); err != nil || v < 0 {
			return "", 0, fmt.Errorf("version %q: want a whole number", args[1])
		}
	}
	return args[0], v, nil
}
