package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/plumbhq/plumb/client"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/service"
	"github.com/plumbhq/plumb/store"
)

// backend does a command's work: in this process on a store file (local), or on a server
// (remote). Both read their input through the same pipeline and decoder (files.go).
type backend interface {
	// score writes one ScoreResponse line per ScoreRequest line of in, in order.
	score(ctx context.Context, in *input, out *output) error
	// evaluate reports a profile on the labelled lines of in.
	evaluate(ctx context.Context, in *input, cfg *plumbv1.EvaluateConfig) (*plumbv1.Report, error)
	// fit fits (and unless a dry run stores) a profile on the labelled lines of in.
	fit(ctx context.Context, in *input, cfg *plumbv1.FitConfig) (*plumbv1.FitResponse, error)
	// profiles manages stored profile versions.
	profiles() profileAPI
	Close() error
}

// profileAPI is ProfileService's unary calls, which *service.Service has as they are.
type profileAPI interface {
	GetProfile(context.Context, *plumbv1.GetProfileRequest) (*plumbv1.GetProfileResponse, error)
	ListProfiles(context.Context, *plumbv1.ListProfilesRequest) (*plumbv1.ListProfilesResponse, error)
	ActivateProfile(context.Context, *plumbv1.ActivateProfileRequest) (*plumbv1.ActivateProfileResponse, error)
	DeleteProfile(context.Context, *plumbv1.DeleteProfileRequest) (*plumbv1.DeleteProfileResponse, error)
	ImportProfile(context.Context, *plumbv1.ImportProfileRequest) (*plumbv1.ImportProfileResponse, error)
}

// target holds the flags that choose a backend.
type target struct {
	server, store, token string
	streams              int
}

func (t *target) register(fs *flag.FlagSet) {
	fs.StringVar(&t.server, "server", "", "address of a plumb server (host:port); empty works in-process on --store")
	fs.StringVar(&t.store, "store", envOr("PLUMB_STORE", "plumb.db"), "profile store for in-process work: a bbolt file or a postgres:// URL ($PLUMB_STORE)")
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
		return &remote{c: c, streams: t.streams}, nil
	}
	st, err := store.OpenAny(context.Background(), t.store, store.PostgresConfig{})
	if err != nil {
		return nil, err
	}
	return &local{svc: service.New(st), st: st}, nil
}

// local works in this process, through the service layer on a store file: its errors are the
// server's statuses, so both backends report the same codes and words.
type local struct {
	svc *service.Service
	st  store.Store
}

func (l *local) profiles() profileAPI { return l.svc }

func (l *local) Close() error { return l.st.Close() }

// remote works through a server with the client package.
type remote struct {
	c       *client.Client
	streams int
}

func (r *remote) profiles() profileAPI { return remoteProfiles{r.c.Profiles} }

func (r *remote) Close() error { return r.c.Close() }

// remoteProfiles is ProfileService's client as a profileAPI.
type remoteProfiles struct{ c plumbv1.ProfileServiceClient }

func (p remoteProfiles) GetProfile(ctx context.Context, q *plumbv1.GetProfileRequest) (*plumbv1.GetProfileResponse, error) {
	return p.c.GetProfile(ctx, q)
}

func (p remoteProfiles) ListProfiles(ctx context.Context, q *plumbv1.ListProfilesRequest) (*plumbv1.ListProfilesResponse, error) {
	return p.c.ListProfiles(ctx, q)
}

func (p remoteProfiles) ActivateProfile(ctx context.Context, q *plumbv1.ActivateProfileRequest) (*plumbv1.ActivateProfileResponse, error) {
	return p.c.ActivateProfile(ctx, q)
}

func (p remoteProfiles) ImportProfile(ctx context.Context, q *plumbv1.ImportProfileRequest) (*plumbv1.ImportProfileResponse, error) {
	return p.c.ImportProfile(ctx, q)
}

func (p remoteProfiles) DeleteProfile(ctx context.Context, q *plumbv1.DeleteProfileRequest) (*plumbv1.DeleteProfileResponse, error) {
	return p.c.DeleteProfile(ctx, q)
}

// profileArg reads NAME and an optional VERSION: NAME VERSION or NAME@VERSION.
func profileArg(args []string) (string, int64, error) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return "", 0, fmt.Errorf("a profile name is required")
	}
	name, ver := args[0], ""
	if n, v, ok := strings.Cut(name, "@"); ok {
		name, ver = n, v
	} else if len(args) > 1 {
		ver = args[1]
	}
	var v int64
	if ver != "" {
		var err error
		if v, err = strconv.ParseInt(ver, 10, 64); err != nil || v < 0 {
			return "", 0, fmt.Errorf("version %q: want a whole number", ver)
		}
	}
	return name, v, nil
}
