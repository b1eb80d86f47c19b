package server

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/plumbhq/plumb/api"
	"github.com/plumbhq/plumb/calibrate"
	"github.com/plumbhq/plumb/client"
	"github.com/plumbhq/plumb/internal/datasets"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/service"
	"github.com/plumbhq/plumb/store"
)

// harness is a real server on a real loopback port over a real bbolt file, and a client.
type harness struct {
	srv      *Server
	st       *store.Bolt
	c        *client.Client
	addr     string
	http     string // base URL of the HTTP front end
	stop     context.CancelFunc
	done     chan error // Serve's (gRPC) result
	httpDone chan error
	dbDir    string
}

func start(t testing.TB, cfg Config, opts *client.Options, svcOpts ...service.Option) *harness {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "plumb.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	h := startOn(t, st, cfg, opts, svcOpts...)
	h.st, h.dbDir = st, dir
	return h
}

// startOn is start on the store st, which the harness closes.
func startOn(t testing.TB, st store.Store, cfg Config, opts *client.Options, svcOpts ...service.Option) *harness {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Logger == nil {
		cfg.Logger = discard()
	}
	srv, err := New(service.New(st, svcOpts...), cfg)
	if err != nil {
		t.Fatal(err)
	}
	hlis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{srv: srv, addr: lis.Addr().String(), http: "http://" + hlis.Addr().String(), done: make(chan error, 1), httpDone: make(chan error, 1)}
	ctx, stop := context.WithCancel(context.Background())
	h.stop = stop
	go func() { h.done <- h.srv.Serve(ctx, lis) }()
	go func() { h.httpDone <- h.srv.ServeHTTP(ctx, hlis) }()
	if h.c, err = client.Dial(h.addr, opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.c.Close()
		stop()
		<-h.done
		<-h.httpDone
		st.Close()
	})
	return h
}

// mmluExamples reads the MMLU file as the protojson LabeledExamples it is.
func mmluExamples(t testing.TB) []*plumbv1.LabeledExample {
	var out []*plumbv1.LabeledExample
	for _, q := range datasets.MMLU(t) {
		var ex plumbv1.LabeledExample
		if err := protojson.Unmarshal(q.RawLine, &ex); err != nil {
			t.Fatal(err)
		}
		out = append(out, &ex)
	}
	return out
}

func seq(exs []*plumbv1.LabeledExample) func(func(*plumbv1.LabeledExample, error) bool) {
	return func(yield func(*plumbv1.LabeledExample, error) bool) {
		for _, e := range exs {
			if !yield(e, nil) {
				return
			}
		}
	}
}

// TestEndToEnd: over a real TCP port through the client package, fit on the real MMLU data
// with the Fit stream, activate, Score, ScoreStream 1 000 requests in order, Evaluate, list,
// roll back and delete; every score equals the engine's in-process result exactly.
func TestEndToEnd(t *testing.T) {
	h := start(t, Config{}, nil)
	ctx := context.Background()
	exs := mmluExamples(t)

	fit1, err := h.c.Fit(ctx, &plumbv1.FitConfig{Name: "mmlu", Seed: 1, Activate: proto.Bool(true)}, seq(exs))
	if err != nil {
		t.Fatal(err)
	}
	if !fit1.GetStored() || fit1.GetProfile().GetVersion() != 1 || !fit1.GetProfile().GetActive() {
		t.Fatalf("first fit: %v", fit1.GetProfile())
	}
	fit2, err := h.c.Fit(ctx, &plumbv1.FitConfig{Name: "mmlu", Seed: 2, Temperature: plumbv1.TemperatureMethod_TEMPERATURE_METHOD_GLOBAL, Activate: proto.Bool(false)}, seq(exs))
	if err != nil {
		t.Fatal(err)
	}
	if v := fit2.GetProfile(); v.GetVersion() != 2 || v.GetActive() {
		t.Fatalf("second fit without activate: %v, want version 2 inactive", v)
	}
	if _, err := h.c.Profiles.ActivateProfile(ctx, &plumbv1.ActivateProfileRequest{Name: "mmlu", Version: 2}); err != nil {
		t.Fatal(err)
	}

	// The engine in-process, on the profile as the server stored it.
	got, err := h.c.Profiles.GetProfile(ctx, &plumbv1.GetProfileRequest{Name: "mmlu"})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetProfile().GetVersion() != 2 {
		t.Fatalf("active version %d, want 2", got.GetProfile().GetVersion())
	}
	prof, err := api.Profile(got.GetProfile())
	if err != nil {
		t.Fatal(err)
	}
	want := func(r *plumbv1.ScoreRequest) *plumbv1.ScoreResponse {
		q, err := api.Question(r)
		if err != nil {
			t.Fatal(err)
		}
		res, err := calibrate.Score(context.Background(), prof, &q)
		if err != nil {
			t.Fatal(err)
		}
		return api.Response(&res)
	}

	req := proto.Clone(exs[0].GetRequest()).(*plumbv1.ScoreRequest)
	req.Profile = "mmlu"
	resp, err := h.c.Score(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(resp, want(req)) {
		t.Fatalf("Score over gRPC differs from the engine:\n%v\n%v", resp, want(req))
	}

	// ScoreStream: 1 000 requests, one of them bad, in order with ids echoed.
	var reqs []*plumbv1.ScoreRequest
	for i := 0; i < 1000; i++ {
		r := proto.Clone(exs[i%len(exs)].GetRequest()).(*plumbv1.ScoreRequest)
		r.Profile = "mmlu"
		r.Id = "req-" + strconv.Itoa(i)
		if i == 500 {
			r.Paraphrases[3].Options[1].Logprob = 0.5
		}
		reqs = append(reqs, r)
	}
	i := 0
	for resp, err := range h.c.ScoreAll(ctx, func(yield func(*plumbv1.ScoreRequest) bool) {
		for _, r := range reqs {
			if !yield(r) {
				return
			}
		}
	}) {
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetId() != reqs[i].GetId() {
			t.Fatalf("response %d has id %q, want %q", i, resp.GetId(), reqs[i].GetId())
		}
		if i == 500 {
			if e := resp.GetError(); e == nil || e.GetField() != "paraphrases[3].options[1].logprob" || codes.Code(e.GetCode()) != codes.InvalidArgument {
				t.Fatalf("bad item: %v", resp)
			}
		} else if !proto.Equal(resp, want(reqs[i])) {
			t.Fatalf("stream response %d differs from the engine", i)
		}
		i++
	}
	if i != 1000 {
		t.Fatalf("%d responses, want 1000", i)
	}
	// The same over 3 concurrent streams in batches of 7: still in order, still the engine's.
	i = 0
	for resp, err := range h.c.ScoreConcurrent(ctx, func(yield func(*plumbv1.ScoreRequest) bool) {
		for _, r := range reqs {
			if !yield(r) {
				return
			}
		}
	}, 3, 7) {
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetId() != reqs[i].GetId() || i != 500 && !proto.Equal(resp, want(reqs[i])) || i == 500 && resp.GetError() == nil {
			t.Fatalf("concurrent response %d: %v", i, resp)
		}
		i++
	}
	if i != 1000 {
		t.Fatalf("%d concurrent responses, want 1000", i)
	}
	// Leaving the loop early cancels the streams; the client goes on working.
	n := 0
	for _, err := range h.c.ScoreConcurrent(ctx, func(yield func(*plumbv1.ScoreRequest) bool) {
		for _, r := range reqs {
			if !yield(r) {
				return
			}
		}
	}, 2, 5) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 12 {
			break
		}
	}
	if _, err := h.c.Score(ctx, req); err != nil {
		t.Fatalf("after an early break: %v", err)
	}

	// Evaluate writes nothing and agrees with the engine.
	rep, err := h.c.Evaluate(ctx, &plumbv1.EvaluateConfig{Profile: "mmlu"}, seq(exs[:400]))
	if err != nil {
		t.Fatal(err)
	}
	var local []calibrate.Example
	for _, e := range exs[:400] {
		ex, err := api.Example(e)
		if err != nil {
			t.Fatal(err)
		}
		local = append(local, ex)
	}
	lr, err := calibrate.Evaluate(context.Background(), prof, local)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(rep, api.Report(lr)) {
		t.Fatalf("Evaluate over gRPC differs from the engine")
	}

	// List, roll back, delete.
	list, err := h.c.Profiles.ListProfiles(ctx, &plumbv1.ListProfilesRequest{})
	if err != nil || len(list.GetProfiles()) != 2 || !list.GetProfiles()[1].GetActive() {
		t.Fatalf("list = %v, %v", list, err)
	}
	if _, err := h.c.Profiles.ActivateProfile(ctx, &plumbv1.ActivateProfileRequest{Name: "mmlu", Version: 1}); err != nil {
		t.Fatal(err)
	}
	resp, err = h.c.Score(ctx, req)
	if err != nil || resp.GetProfile().GetVersion() != 1 {
		t.Fatalf("after rollback: version %d, %v; want 1", resp.GetProfile().GetVersion(), err)
	}
	if _, err := h.c.Profiles.DeleteProfile(ctx, &plumbv1.DeleteProfileRequest{Name: "mmlu", Version: 1}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("deleting the active version: %v, want FailedPrecondition", err)
	}
	if d, err := h.c.Profiles.DeleteProfile(ctx, &plumbv1.DeleteProfileRequest{Name: "mmlu", Version: 2}); err != nil || d.GetDeleted() != 1 {
		t.Fatalf("delete v2 = %v, %v", d, err)
	}
	if _, err := h.c.Profiles.GetProfile(ctx, &plumbv1.GetProfileRequest{Name: "mmlu", Version: 2}); status.Code(err) != codes.NotFound {
		t.Fatalf("deleted version: %v, want NotFound", err)
	}
	if d, err := h.c.Profiles.DeleteProfile(ctx, &plumbv1.DeleteProfileRequest{Name: "mmlu"}); err != nil || d.GetDeleted() != 1 {
		t.Fatalf("delete all = %v, %v", d, err)
	}
	if _, err := h.c.Score(ctx, req); status.Code(err) != codes.NotFound {
		t.Fatalf("score on a deleted profile: %v, want NotFound", err)
	}
}

// field returns the field of a status's BadRequest detail.
func field(err error) string {
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			return br.GetFieldViolations()[0].GetField()
		}
	}
	return ""
}

func opts(labels string, lps ...float64) []*plumbv1.Option {
	var o []*plumbv1.Option
	for i, l := range strings.Split(labels, ",") {
		o = append(o, &plumbv1.Option{Label: l, Logprob: lps[i]})
	}
	return o
}

func para(o []*plumbv1.Option) *plumbv1.Paraphrase { return &plumbv1.Paraphrase{Options: o} }

// TestBadInputOverGRPC sends every request row of docs/DESIGN.md's bad-input table over gRPC: each
// returns its code and field path, and the server keeps serving.
func TestBadInputOverGRPC(t *testing.T) {
	h := start(t, Config{MaxMessageBytes: 2 << 20}, nil)
	ctx := context.Background()
	good := &plumbv1.ScoreRequest{Paraphrases: []*plumbv1.Paraphrase{para(opts("A,B,C", -0.3, -1.5, -2.5))}}
	many := &plumbv1.ScoreRequest{}
	for i := 0; i < 65; i++ {
		many.Paraphrases = append(many.Paraphrases, para(opts("A,B", -0.5, -1)))
	}
	samples := func(toks ...*plumbv1.Token) *plumbv1.Paraphrase {
		return &plumbv1.Paraphrase{Samples: []*plumbv1.Sample{{Text: "Paris", Tokens: toks}}}
	}
	bigTokens := make([]*plumbv1.Token, calibrate.MaxTokens+1)
	for i := range bigTokens {
		bigTokens[i] = &plumbv1.Token{Logprob: -0.1}
	}
	embed := func(vs ...[]float32) *plumbv1.Paraphrase {
		p := &plumbv1.Paraphrase{}
		for _, v := range vs {
			p.Samples = append(p.Samples, &plumbv1.Sample{Text: "x", Embedding: v})
		}
		return p
	}
	embMode := &plumbv1.Policy{Equivalence: plumbv1.Equivalence_EQUIVALENCE_EMBEDDING}
	stance := func(s string) *plumbv1.Paraphrase {
		return &plumbv1.Paraphrase{Framing: plumbv1.Framing_FRAMING_USER_STANCE, Stance: s, Options: opts("A,B,C", -1, -1, -1)}
	}
	huge := &plumbv1.ScoreRequest{Id: strings.Repeat("x", 3<<20), Paraphrases: good.Paraphrases}
	for _, tc := range []struct {
		name  string
		req   *plumbv1.ScoreRequest
		code  codes.Code
		field string
	}{
		{"no paraphrases", &plumbv1.ScoreRequest{}, codes.InvalidArgument, "paraphrases"},
		{"65 paraphrases", many, codes.InvalidArgument, "paraphrases"},
		{"both kinds", &plumbv1.ScoreRequest{Paraphrases: []*plumbv1.Paraphrase{{Options: opts("A,B", -1, -1), Samples: []*plumbv1.Sample{{Text: "x"}}}}}, codes.InvalidArgument, "paraphrases[0]"},
		{"neither kind", &plumbv1.ScoreRequest{Paraphrases: []*plumbv1.Paraphrase{para(opts("A,B", -1, -1)), {}}}, codes.InvalidArgument, "paraphrases[1]"},
		{"mixed kinds", &plumbv1.ScoreRequest{Paraphrases: []*plumbv1.Paraphrase{para(opts("A,B", -1, -1)), samples()}}, codes.InvalidArgument, "paraphrases[1]"},
		{"label sets differ", &plumbv1.ScoreRequest{Paraphrases: []*plumbv1.Paraphrase{para(opts("A,B", -1, -1)), para(opts("A,C", -1, -1))}}, codes.InvalidArgument, "paraphrases[1].options[1].label"},
		{"duplicate label", &plumbv1.ScoreRequest{Paraphrases: []*plumbv1.Paraphrase{para(opts("A,A", -1, -1))}}, codes.InvalidArgument, "paraphrases[0].options[1].label"},
		{"one option", &plumbv1.ScoreRequest{Paraphrases: []*plumbv1.Paraphrase{para(opts("A", -1))}}, codes.InvalidArgument, "paraphrases[0].options"},
		{"NaN", &plumbv1.ScoreRequest{Paraphrases: []*plumbv1.Paraphrase{para(opts("A,B", math.NaN(), -1))}}, codes.InvalidArgument, "paraphrases[0].options[0].logprob"},
		{"+Inf", &plumbv1.ScoreRequest{Paraphrases: []*plumbv1.Paraphrase{para(opts("A,B", -1, math.Inf(1)))}}, codes.InvalidArgument, "paraphrases[0].options[1].logprob"},
		{"positive token logprob", &plumbv1.ScoreRequest{Paraphrases: []*plumbv1.Paraphrase{samples(), samples(), samples(&plumbv1.Token{Logprob: -1}, &plumbv1.Token{Logprob: 0.2})}}, codes.InvalidArgument, "paraphrases[2].samples[0].tokens[1].logprob"},
		{"top mass over 1", &plumbv1.ScoreRequest{Paraphrases: []*plumbv1.Paraphrase{samples(&plumbv1.Token{Logprob: -0.1, TopLogprobs: []*plumbv1.TopLogprob{{Logprob: -0.1}, {Logprob: -0.4}}})}}, codes.InvalidArgument, "paraphrases[0].samples[0].tokens[0].top_logprobs"},
		{"embedding lengths", &plumbv1.ScoreRequest{Policy: embMode, Paraphrases: []*plumbv1.Paraphrase{embed([]float32{1, 0}, []float32{1})}}, codes.InvalidArgument, "paraphrases[0].samples[1].embedding"},
		{"zero embedding", &plumbv1.ScoreRequest{Policy: embMode, Paraphrases: []*plumbv1.Paraphrase{embed([]float32{0, 0})}}, codes.InvalidArgument, "paraphrases[0].samples[0].embedding"},
		{"stance missing", &plumbv1.ScoreRequest{Paraphrases: []*plumbv1.Paraphrase{para(opts("A,B,C", -1, -1, -1)), stance("")}}, codes.InvalidArgument, "paraphrases[1].stance"},
		{"stance not a label", &plumbv1.ScoreRequest{Paraphrases: []*plumbv1.Paraphrase{para(opts("A,B,C", -1, -1, -1)), stance("Z")}}, codes.InvalidArgument, "paraphrases[1].stance"},
		{"unknown profile", &plumbv1.ScoreRequest{Profile: "nope", Paraphrases: good.Paraphrases}, codes.NotFound, ""},
		{"unknown version", &plumbv1.ScoreRequest{ProfileVersion: 9, Paraphrases: good.Paraphrases}, codes.NotFound, ""},
		{"over the size limit", huge, codes.ResourceExhausted, ""},
		{"too many tokens", &plumbv1.ScoreRequest{Paraphrases: []*plumbv1.Paraphrase{samples(bigTokens...)}}, codes.ResourceExhausted, "paraphrases"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.c.Score(ctx, tc.req)
			if status.Code(err) != tc.code {
				t.Fatalf("code %v (%v), want %v", status.Code(err), err, tc.code)
			}
			if f := field(err); f != tc.field {
				t.Fatalf("field %q, want %q (%v)", f, tc.field, err)
			}
			if tc.field != "" && !strings.Contains(status.Convert(err).Message(), tc.field+": ") {
				t.Errorf("message %q does not name %s", status.Convert(err).Message(), tc.field)
			}
			// The server keeps serving.
			if _, err := h.c.Score(ctx, good); err != nil {
				t.Fatalf("good request after a bad one: %v", err)
			}
		})
	}
}

// TestFitPreconditions: a fit with too few examples, or labels that match nothing, is
// FailedPrecondition and writes no version; a config that is not first is InvalidArgument.
func TestFitPreconditions(t *testing.T) {
	h := start(t, Config{}, nil)
	ctx := context.Background()
	exs := mmluExamples(t)
	if _, err := h.c.Fit(ctx, &plumbv1.FitConfig{Name: "p"}, seq(exs[:30])); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("30 examples: %v, want FailedPrecondition", err)
	}
	var nomatch []*plumbv1.LabeledExample
	for _, e := range exs[:200] {
		e = proto.Clone(e).(*plumbv1.LabeledExample)
		e.Label.Answers = []string{"E"}
		nomatch = append(nomatch, e)
	}
	if _, err := h.c.Fit(ctx, &plumbv1.FitConfig{Name: "p"}, seq(nomatch)); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("labels matching nothing: %v, want FailedPrecondition", err)
	}
	bad := proto.Clone(exs[7]).(*plumbv1.LabeledExample)
	bad.Request.Paraphrases[2].Options[0].Logprob = math.Inf(-1)
	withBad := append(append([]*plumbv1.LabeledExample{}, exs[:7]...), bad)
	if _, err := h.c.Fit(ctx, &plumbv1.FitConfig{Name: "p"}, seq(withBad)); status.Code(err) != codes.InvalidArgument ||
		field(err) != "examples[7].request.paraphrases[2].options[0].logprob" {
		t.Fatalf("bad example: %v (field %q)", err, field(err))
	}
	if _, err := h.c.Fit(ctx, &plumbv1.FitConfig{Name: "p", Alpha: 2}, seq(exs)); status.Code(err) != codes.InvalidArgument || field(err) != "config.alpha" {
		t.Fatalf("alpha 2: %v", err)
	}
	// Enum values the API does not define are refused, not stored.
	for _, tc := range []struct {
		name  string
		cfg   *plumbv1.FitConfig
		field string
	}{
		{"equivalence 99", &plumbv1.FitConfig{Name: "p", Equivalence: 99}, "config.equivalence"},
		{"confidence map 99", &plumbv1.FitConfig{Name: "p", ConfidenceMap: 99}, "config.confidence_map"},
		{"temperature 99", &plumbv1.FitConfig{Name: "p", Temperature: 99}, "config.temperature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := h.c.Fit(ctx, tc.cfg, seq(exs)); status.Code(err) != codes.InvalidArgument || field(err) != tc.field {
				t.Fatalf("%v (field %q), want InvalidArgument on %s", err, field(err), tc.field)
			}
		})
	}
	if _, err := h.c.Evaluate(ctx, &plumbv1.EvaluateConfig{Equivalence: 99}, seq(exs[:10])); status.Code(err) != codes.InvalidArgument || field(err) != "config.equivalence" {
		t.Fatalf("evaluate with equivalence 99: %v", err)
	}
	if list, _ := h.c.Profiles.ListProfiles(ctx, &plumbv1.ListProfilesRequest{}); len(list.GetProfiles()) != 0 {
		t.Fatalf("failed fits wrote %v", list.GetProfiles())
	}
}

// TestPanicRecovery: a panic in a handler becomes Internal and the next call succeeds.
func TestPanicRecovery(t *testing.T) {
	h := start(t, Config{}, nil)
	ctx := context.Background()
	req := &plumbv1.ScoreRequest{Paraphrases: []*plumbv1.Paraphrase{para(opts("A,B", -0.2, -1.8))}}
	h.srv.scoreHook = func() { panic("injected") }
	if _, err := h.c.Score(ctx, req); status.Code(err) != codes.Internal {
		t.Fatalf("panicking handler: %v, want Internal", err)
	}
	h.srv.scoreHook = nil
	if _, err := h.c.Score(ctx, req); err != nil {
		t.Fatalf("after the panic: %v", err)
	}
}

// TestAuth: with tokens, calls need one; health and reflection do not.
func TestAuth(t *testing.T) {
	h := start(t, Config{Tokens: []Token{{"s3cret", RoleAdmin}}}, nil)
	ctx := context.Background()
	req := &plumbv1.ScoreRequest{Paraphrases: []*plumbv1.Paraphrase{para(opts("A,B", -0.2, -1.8))}}
	if _, err := h.c.Score(ctx, req); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no token: %v, want Unauthenticated", err)
	}
	hc := healthpb.NewHealthClient(h.c.Conn())
	if r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health without a token: %v, %v", r, err)
	}
	wrong, _ := client.Dial(h.addr, &client.Options{Token: "nope"})
	defer wrong.Close()
	if _, err := wrong.Score(ctx, req); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("wrong token: %v", err)
	}
	right, _ := client.Dial(h.addr, &client.Options{Token: "s3cret"})
	defer right.Close()
	if _, err := right.Score(ctx, req); err != nil {
		t.Fatalf("right token: %v", err)
	}
}

// TestRateLimit: past the limit, calls are ResourceExhausted.
func TestRateLimit(t *testing.T) {
	h := start(t, Config{RateLimit: 1, RateBurst: 2}, nil)
	req := &plumbv1.ScoreRequest{Paraphrases: []*plumbv1.Paraphrase{para(opts("A,B", -0.2, -1.8))}}
	var limited int
	for i := 0; i < 5; i++ {
		if _, err := h.c.Score(context.Background(), req); status.Code(err) == codes.ResourceExhausted {
			limited++
		}
	}
	if limited < 2 {
		t.Fatalf("%d of 5 calls limited at 1/s with burst 2, want ≥ 2", limited)
	}
}

// TestGracefulShutdown: cancelling Serve's context sets health NOT_SERVING and stops the server.
func TestGracefulShutdown(t *testing.T) {
	h := start(t, Config{ShutdownGrace: time.Second}, nil)
	h.stop()
	select {
	case err := <-h.done:
		h.done <- err // for Cleanup
		if err != nil {
			t.Fatalf("Serve returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if r, err := h.srv.health.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health after shutdown: %v, %v", r, err)
	}
}

// TestMetrics: the Prometheus handler counts handled calls by method and code.
func TestMetrics(t *testing.T) {
	h := start(t, Config{}, nil)
	req := &plumbv1.ScoreRequest{Paraphrases: []*plumbv1.Paraphrase{para(opts("A,B", -0.2, -1.8))}}
	h.c.Score(context.Background(), req)
	h.c.Score(context.Background(), &plumbv1.ScoreRequest{})
	rec := httptest.NewRecorder()
	h.srv.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`plumb_rpc_handled_total{code="OK",method="/plumb.v1.ConfidenceService/Score",transport="grpc"} 1`,
		`plumb_rpc_handled_total{code="InvalidArgument",method="/plumb.v1.ConfidenceService/Score",transport="grpc"} 1`,
		`plumb_rpc_handling_seconds_bucket{method="/plumb.v1.ConfidenceService/Score",transport="grpc"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestFitRetried: a fit sent twice with one fit id — as a client retries after its answer was
// lost — is stored once: the retry answers with the first fit's version, marked existing, and
// the name holds one version. Another id stores another version.
func TestFitRetried(t *testing.T) {
	h := start(t, Config{}, nil)
	ctx := context.Background()
	exs := mmluExamples(t)[:300]
	cfg := &plumbv1.FitConfig{Name: "retried", FitId: "6f1c2a52-2d43-4c1e-9a53-0d8c54a1e0b7"}
	first, err := h.c.Fit(ctx, cfg, seq(exs))
	if err != nil {
		t.Fatal(err)
	}
	again, err := h.c.Fit(ctx, cfg, seq(exs))
	if err != nil {
		t.Fatal(err)
	}
	if first.GetExisting() || !again.GetExisting() || !again.GetStored() {
		t.Errorf("existing: first %v, retry %v (stored %v); want false, true (true)", first.GetExisting(), again.GetExisting(), again.GetStored())
	}
	if again.GetProfile().GetVersion() != first.GetProfile().GetVersion() || !proto.Equal(again.GetReport(), first.GetReport()) {
		t.Errorf("the retry answered version %d with another report; want the first fit's version %d and report",
			again.GetProfile().GetVersion(), first.GetProfile().GetVersion())
	}
	other, err := h.c.Fit(ctx, &plumbv1.FitConfig{Name: "retried", FitId: "another"}, seq(exs))
	if err != nil {
		t.Fatal(err)
	}
	l, err := h.c.Profiles.ListProfiles(ctx, &plumbv1.ListProfilesRequest{Name: "retried"})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.GetProfiles()) != 2 || other.GetProfile().GetVersion() != 2 || other.GetExisting() {
		t.Errorf("%d versions stored, the other fit's is %d (existing %v); want 2, 2, false", len(l.GetProfiles()), other.GetProfile().GetVersion(), other.GetExisting())
	}
}

// TestListPages: 7 versions listed 3 at a time come in three pages, the last without a
// next token, together equal to the one-page listing; the listing reads each version's summary
// (no report), and GetProfile still has the whole.
func TestListPages(t *testing.T) {
	h := start(t, Config{}, nil)
	ctx := context.Background()
	exs := mmluExamples(t)[:300]
	for i := range 7 {
		if _, err := h.c.Fit(ctx, &plumbv1.FitConfig{Name: fmt.Sprintf("p%d", i%3)}, seq(exs)); err != nil {
			t.Fatal(err)
		}
	}
	all, err := h.c.Profiles.ListProfiles(ctx, &plumbv1.ListProfilesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.GetProfiles()) != 7 || all.GetNextPageToken() != "" {
		t.Fatalf("one page of the default size: %d versions, next %q; want 7, none", len(all.GetProfiles()), all.GetNextPageToken())
	}
	var paged []*plumbv1.Profile
	pages := 0
	for token := ""; ; pages++ {
		l, err := h.c.Profiles.ListProfiles(ctx, &plumbv1.ListProfilesRequest{PageSize: 3, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, l.GetProfiles()...)
		if token = l.GetNextPageToken(); token == "" {
			break
		}
	}
	if pages != 2 || len(paged) != 7 {
		t.Fatalf("pages of 3: %d versions after %d tokens, want 7 after 2", len(paged), pages)
	}
	for i := range paged {
		if !proto.Equal(paged[i], all.GetProfiles()[i]) {
			t.Errorf("paged listing [%d] = %s@%d, want %s@%d", i, paged[i].GetName(), paged[i].GetVersion(), all.GetProfiles()[i].GetName(), all.GetProfiles()[i].GetVersion())
		}
		if paged[i].GetReport() != nil || !paged[i].GetCalibrated() {
			t.Errorf("%s@%d listed with a report or without its calibration", paged[i].GetName(), paged[i].GetVersion())
		}
	}
	got, err := h.c.Profiles.GetProfile(ctx, &plumbv1.GetProfileRequest{Name: "p0", Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetProfile().GetReport() == nil {
		t.Error("GetProfile lost the report the summary leaves out")
	}
}
