package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/plumbhq/plumb/api"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
)

// The transport conformance suite: every RPC and every bad input of docs/DESIGN.md's table is
// sent as bytes over the four protocols plumb serves — gRPC (grpc-go's port), and Connect
// binary, Connect JSON and gRPC-Web (the HTTP port) — and each must be answered with the same
// code, the same field at fault, and the same stream behaviour. The bytes are written by the
// test (binary protobuf, or protojson for Connect JSON), so that it can send what no client
// library would: invalid UTF-8, an unknown field or enum value, a message past a cap.

// raw is a message as bytes in a protocol's encoding.
type raw struct{ b []byte }

// rawGRPC is grpc-go's codec of raw messages.
type rawGRPC struct{}

func (rawGRPC) Marshal(v any) ([]byte, error) { return v.(*raw).b, nil }
func (rawGRPC) Unmarshal(data []byte, v any) error {
	v.(*raw).b = append([]byte(nil), data...)
	return nil
}
func (rawGRPC) Name() string { return "proto" }

// rawConnect is connect-go's codec of raw messages, under name.
type rawConnect struct{ name string }

func (c rawConnect) Name() string { return c.name }

func (c rawConnect) Marshal(v any) ([]byte, error) {
	if r, ok := v.(*raw); ok {
		return r.b, nil
	}
	if c.name == "json" {
		return protojson.Marshal(v.(proto.Message))
	}
	return proto.Marshal(v.(proto.Message))
}

func (c rawConnect) Unmarshal(data []byte, v any) error {
	if r, ok := v.(*raw); ok {
		r.b = append([]byte(nil), data...)
		return nil
	}
	if c.name == "json" {
		return protojson.Unmarshal(data, v.(proto.Message))
	}
	return proto.Unmarshal(data, v.(proto.Message)) // the error details of the gRPC protocols
}

// outcome is what a call came to: the code, the field named by its BadRequest detail, and
// the response messages' bytes.
type outcome struct {
	code  codes.Code
	field string
	resps [][]byte
}

// protocol is one way to call plumb: unary and streaming calls of raw messages.
type protocol struct {
	name string
	enc  api.Encoding
	call func(ctx context.Context, method, token string, reqs [][]byte, stream bool) outcome
}

func (p protocol) encode(t *testing.T, m proto.Message) []byte {
	t.Helper()
	var b []byte
	var err error
	if p.enc == api.JSON {
		b, err = protojson.Marshal(m)
	} else {
		b, err = proto.Marshal(m)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (p protocol) decode(t *testing.T, b []byte, m proto.Message) {
	t.Helper()
	var err error
	if p.enc == api.JSON {
		err = protojson.Unmarshal(b, m)
	} else {
		err = proto.Unmarshal(b, m)
	}
	if err != nil {
		t.Fatalf("%s: a response does not decode: %v", p.name, err)
	}
}

func fieldOf(details []any) string {
	for _, d := range details {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			return br.GetFieldViolations()[0].GetField()
		}
	}
	return ""
}

// protocols returns the four protocols to the harness's server.
func protocols(t *testing.T, h *harness) []protocol {
	conn, err := grpc.NewClient(h.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawGRPC{}), grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	grpcCall := func(ctx context.Context, method, token string, reqs [][]byte, stream bool) outcome {
		if token != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		}
		var out outcome
		var err error
		if !stream {
			var resp raw
			if err = conn.Invoke(ctx, method, &raw{reqs[0]}, &resp); err == nil {
				out.resps = append(out.resps, resp.b)
			}
		} else {
			var s grpc.ClientStream
			if s, err = conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, method); err == nil {
				for _, r := range reqs {
					if s.SendMsg(&raw{r}) != nil {
						break // the server ended the call: RecvMsg says why
					}
				}
				s.CloseSend()
				for {
					var resp raw
					if err = s.RecvMsg(&resp); err != nil {
						break
					}
					out.resps = append(out.resps, resp.b)
				}
				if err == io.EOF {
					err = nil
				}
			}
		}
		st := status.Convert(err)
		out.code, out.field = st.Code(), fieldOf(st.Details())
		return out
	}
	h2c := &http.Client{Transport: &http.Transport{Protocols: func() *http.Protocols {
		p := new(http.Protocols)
		p.SetUnencryptedHTTP2(true)
		return p
	}()}}
	connectCall := func(codec string, opts ...connect.ClientOption) func(ctx context.Context, method, token string, reqs [][]byte, stream bool) outcome {
		opts = append(opts, connect.WithCodec(rawConnect{codec}), connect.WithReadMaxBytes(64<<20))
		return func(ctx context.Context, method, token string, reqs [][]byte, stream bool) outcome {
			c := connect.NewClient[raw, raw](h2c, h.http+method, opts...)
			var out outcome
			var err error
			if !stream {
				req := connect.NewRequest(&raw{reqs[0]})
				if token != "" {
					req.Header().Set("Authorization", "Bearer "+token)
				}
				var resp *connect.Response[raw]
				if resp, err = c.CallUnary(ctx, req); err == nil {
					out.resps = append(out.resps, resp.Msg.b)
				}
			} else {
				s := c.CallBidiStream(ctx)
				if token != "" {
					s.RequestHeader().Set("Authorization", "Bearer "+token)
				}
				for _, r := range reqs {
					if s.Send(&raw{r}) != nil {
						break
					}
				}
				s.CloseRequest()
				for {
					resp, rerr := s.Receive()
					if rerr != nil {
						if !errors.Is(rerr, io.EOF) {
							err = rerr
						}
						break
					}
					out.resps = append(out.resps, resp.b)
				}
				s.CloseResponse()
			}
			out.code = codes.Code(connect.CodeOf(err))
			if err == nil {
				out.code = codes.OK
			}
			var ce *connect.Error
			if errors.As(err, &ce) {
				var details []any
				for _, d := range ce.Details() {
					if v, derr := d.Value(); derr == nil {
						details = append(details, v)
					}
				}
				out.field = fieldOf(details)
			}
			return out
		}
	}
	return []protocol{
		{"grpc", api.Binary, grpcCall},
		{"connect-binary", api.Binary, connectCall("proto")},
		{"connect-json", api.JSON, connectCall("json")},
		{"grpc-web", api.Binary, connectCall("proto", connect.WithGRPCWeb())},
	}
}

// request is a call of the suite: a method and its messages, written for each protocol
// (a message, or bytes where no message can hold the fault: bin for the binary protocols,
// js for Connect JSON).
type request struct {
	method string
	msgs   []proto.Message
	bin    [][]byte
	js     [][]byte
	stream bool
}

func (r request) bytes(t *testing.T, p protocol) [][]byte {
	switch {
	case p.enc == api.Binary && r.bin != nil:
		return r.bin
	case p.enc == api.JSON && r.js != nil:
		return r.js
	}
	var out [][]byte
	for _, m := range r.msgs {
		out = append(out, p.encode(t, m))
	}
	return out
}

func score(r *plumbv1.ScoreRequest) request {
	return request{method: "/plumb.v1.ConfidenceService/Score", msgs: []proto.Message{r}}
}

func fitStream(msgs ...proto.Message) request {
	return request{method: "/plumb.v1.ProfileService/Fit", msgs: msgs, stream: true}
}

func fitConfig(c *plumbv1.FitConfig) *plumbv1.FitRequest {
	return &plumbv1.FitRequest{Message: &plumbv1.FitRequest_Config{Config: c}}
}

func fitExample(ex *plumbv1.LabeledExample) *plumbv1.FitRequest {
	return &plumbv1.FitRequest{Message: &plumbv1.FitRequest_Example{Example: ex}}
}

// withBytes replaces every byte sequence old of m's wire and JSON forms with new: a fault no
// protobuf library writes (invalid UTF-8).
func withBytes(t *testing.T, r request, old, new string) request {
	bin, err := proto.Marshal(r.msgs[0])
	if err != nil {
		t.Fatal(err)
	}
	js, err := protojson.Marshal(r.msgs[0])
	if err != nil {
		t.Fatal(err)
	}
	r.bin = [][]byte{[]byte(strings.Replace(string(bin), old, new, 1))}
	r.js = [][]byte{[]byte(strings.Replace(string(js), old, new, 1))}
	return r
}

// TestTransportConformance: every RPC, good and bad, comes to the same code and field on the
// four protocols.
func TestTransportConformance(t *testing.T) {
	h := start(t, Config{MaxMessageBytes: 1 << 20}, nil)
	ctx := context.Background()
	exs := mmluExamples(t)
	if _, err := h.c.Fit(ctx, &plumbv1.FitConfig{Name: "p", Risk: 0.3, Activate: proto.Bool(true)}, seq(exs[:300])); err != nil {
		t.Fatal(err)
	}
	good := &plumbv1.ScoreRequest{Id: "good", Paraphrases: []*plumbv1.Paraphrase{para(opts("A,B", -0.2, -1.8)), para(opts("A,B", -0.3, -1.5))}}
	with := func(f func(*plumbv1.ScoreRequest)) *plumbv1.ScoreRequest {
		r := proto.CloneOf(good)
		f(r)
		return r
	}
	samples := func(texts ...string) *plumbv1.Paraphrase {
		p := &plumbv1.Paraphrase{}
		for _, s := range texts {
			p.Samples = append(p.Samples, &plumbv1.Sample{Text: s})
		}
		return p
	}
	badUTF8 := withBytes(t, score(with(func(r *plumbv1.ScoreRequest) { r.Paraphrases[1].Options[1].Label = "Q" })), "Q", "\xff")
	badUTF8.msgs = nil
	stanceTypo := score(good)
	stanceTypo.js = [][]byte{[]byte(`{"paraphrases":[{"options":[{"label":"A","logprob":-0.2},{"label":"B","logprob":-1.8}]},` +
		`{"framing":"FRAMING_USER_STANCE_","stance":"B","options":[{"label":"A","logprob":-0.3},{"label":"B","logprob":-1.5}]}]}`)}
	stanceTypo.bin = [][]byte{mustMarshal(t, with(func(r *plumbv1.ScoreRequest) {
		r.Paraphrases[1].Framing, r.Paraphrases[1].Stance = 7, "B" // a value the API does not define
	}))}
	unknownField := score(good)
	unknownField.js = [][]byte{[]byte(`{"paraphrases":[{"options":[{"label":"A","logprob":-0.2},{"label":"B","logprob":-1.8}]}],"polcy":{"risk":0.2}}`)}
	unknownField.bin = [][]byte{append(mustMarshal(t, good), 0xa2, 0x06, 0x00)} // field 100, empty bytes
	tooBig := score(with(func(r *plumbv1.ScoreRequest) { r.Id = strings.Repeat("x", 2<<20) }))

	for _, tc := range []struct {
		name  string
		req   request
		code  codes.Code
		field string
	}{
		{"a good request", score(good), codes.OK, ""},
		{"no wordings", score(&plumbv1.ScoreRequest{}), codes.InvalidArgument, "paraphrases"},
		{"65 wordings", score(&plumbv1.ScoreRequest{Paraphrases: wordings(65)}), codes.InvalidArgument, "paraphrases"},
		{"both kinds in a wording", score(with(func(r *plumbv1.ScoreRequest) { r.Paraphrases[0].Samples = samples("x").Samples })), codes.InvalidArgument, "paraphrases[0]"},
		{"mixed kinds", score(with(func(r *plumbv1.ScoreRequest) { r.Paraphrases[1] = samples("x") })), codes.InvalidArgument, "paraphrases[1]"},
		{"different labels", score(with(func(r *plumbv1.ScoreRequest) { r.Paraphrases[1].Options[1].Label = "C" })), codes.InvalidArgument, "paraphrases[1].options[1].label"},
		{"duplicate labels", score(with(func(r *plumbv1.ScoreRequest) { r.Paraphrases[0].Options[1].Label = "A" })), codes.InvalidArgument, "paraphrases[0].options[1].label"},
		{"one option", score(with(func(r *plumbv1.ScoreRequest) { r.Paraphrases = []*plumbv1.Paraphrase{para(opts("A", -0.1))} })), codes.InvalidArgument, "paraphrases[0].options"},
		{"NaN logprob", score(with(func(r *plumbv1.ScoreRequest) { r.Paraphrases[1].Options[0].Logprob = math.NaN() })), codes.InvalidArgument, "paraphrases[1].options[0].logprob"},
		{"positive logprob", score(with(func(r *plumbv1.ScoreRequest) { r.Paraphrases[0].Options[0].Logprob = 0.5 })), codes.InvalidArgument, "paraphrases[0].options[0].logprob"},
		{"top_logprobs mass over 1", score(&plumbv1.ScoreRequest{Paraphrases: []*plumbv1.Paraphrase{{Samples: []*plumbv1.Sample{{Text: "x",
			Tokens: []*plumbv1.Token{{Token: "x", Logprob: -0.1, TopLogprobs: []*plumbv1.TopLogprob{{Token: "x", Logprob: -0.1}, {Token: "y", Logprob: -0.2}}}}}}}}}),
			codes.InvalidArgument, "paraphrases[0].samples[0].tokens[0].top_logprobs"},
		{"embeddings of two lengths", score(&plumbv1.ScoreRequest{Policy: &plumbv1.Policy{Equivalence: plumbv1.Equivalence_EQUIVALENCE_EMBEDDING},
			Paraphrases: []*plumbv1.Paraphrase{{Samples: []*plumbv1.Sample{{Text: "a", Embedding: []float32{1, 0}}, {Text: "b", Embedding: []float32{1, 0, 0}}}}}}),
			codes.InvalidArgument, "paraphrases[0].samples[1].embedding"},
		{"a stance wording without a stance", score(with(func(r *plumbv1.ScoreRequest) { r.Paraphrases[1].Framing = plumbv1.Framing_FRAMING_USER_STANCE })),
			codes.InvalidArgument, "paraphrases[1].stance"},
		{"a stance that is no label", score(with(func(r *plumbv1.ScoreRequest) {
			r.Paraphrases[1].Framing, r.Paraphrases[1].Stance = plumbv1.Framing_FRAMING_USER_STANCE, "Z"
		})), codes.InvalidArgument, "paraphrases[1].stance"},
		{"an unknown profile", score(with(func(r *plumbv1.ScoreRequest) { r.Profile = "nope" })), codes.NotFound, ""},
		{"an unknown version", score(with(func(r *plumbv1.ScoreRequest) { r.Profile, r.ProfileVersion = "p", 9 })), codes.NotFound, ""},
		{"a bad profile name", score(with(func(r *plumbv1.ScoreRequest) { r.Profile = "a b" })), codes.InvalidArgument, "profile"},
		{"4 097 options", score(&plumbv1.ScoreRequest{Paraphrases: []*plumbv1.Paraphrase{para(manyOpts(4097))}}), codes.ResourceExhausted, "paraphrases[0].options"},
		{"a text of 4 097 bytes", score(&plumbv1.ScoreRequest{Paraphrases: []*plumbv1.Paraphrase{samples(strings.Repeat("x", 4097))}}),
			codes.ResourceExhausted, "paraphrases[0].samples[0].text"},
		{"a message over the limit", tooBig, codes.ResourceExhausted, ""},
		{"invalid UTF-8", badUTF8, codes.InvalidArgument, "paraphrases[1].options[1].label"},
		{"an unknown framing", stanceTypo, codes.InvalidArgument, "paraphrases[1].framing"},
		{"a risk outside the profile's bounds", score(with(func(r *plumbv1.ScoreRequest) { r.Profile, r.Policy = "p", &plumbv1.Policy{Risk: 0.9} })),
			codes.InvalidArgument, "policy.risk"},
		{"an unknown enum number", score(with(func(r *plumbv1.ScoreRequest) { r.Kind = 99 })), codes.InvalidArgument, "kind"},
		{"inconsistent top_logprobs", score(&plumbv1.ScoreRequest{Paraphrases: []*plumbv1.Paraphrase{{Samples: []*plumbv1.Sample{{Text: "x",
			Tokens: []*plumbv1.Token{{Token: "x", Logprob: -0.1, TopLogprobs: []*plumbv1.TopLogprob{{Token: "x", Logprob: -0.9}}}}}}}}}),
			codes.InvalidArgument, "paraphrases[0].samples[0].tokens[0].top_logprobs[0].logprob"},
		{"a long answer", score(longAnswer(nil)), codes.OK, ""},
		{"a long answer, judged", score(longAnswer(func(r *plumbv1.ScoreRequest) {
			for _, s := range r.Paraphrases[0].Samples {
				s.Support = []float64{1, 0}
			}
		})), codes.OK, ""},
		{"257 claims", score(longAnswer(func(r *plumbv1.ScoreRequest) {
			for len(r.Claims) < 257 {
				r.Claims = append(r.Claims, &plumbv1.Claim{Text: "more"})
			}
		})), codes.ResourceExhausted, "claims"},
		{"support of another length", score(longAnswer(func(r *plumbv1.ScoreRequest) {
			for _, s := range r.Paraphrases[0].Samples {
				s.Support = []float64{1}
			}
		})), codes.InvalidArgument, "paraphrases[0].samples[0].support"},
		{"NaN support", score(longAnswer(func(r *plumbv1.ScoreRequest) {
			for _, s := range r.Paraphrases[0].Samples {
				s.Support = []float64{1, math.NaN()}
			}
		})), codes.InvalidArgument, "paraphrases[0].samples[0].support[1]"},
		{"a long answer with options", score(longAnswer(func(r *plumbv1.ScoreRequest) {
			r.Paraphrases = append(r.Paraphrases, para(opts("A,B", -0.2, -1.8)))
		})), codes.InvalidArgument, "paraphrases[1].options"},
		{"an unknown claim verdict", fitStream(fitConfig(&plumbv1.FitConfig{Name: "c", DryRun: true}),
			fitExample(&plumbv1.LabeledExample{Request: longAnswer(nil), Label: &plumbv1.Label{Claims: []plumbv1.ClaimVerdict{1, 7}}})),
			codes.InvalidArgument, "examples[0].label.claims[1]"},
		{"verdicts of another length", fitStream(fitConfig(&plumbv1.FitConfig{Name: "c", DryRun: true}),
			fitExample(&plumbv1.LabeledExample{Request: longAnswer(nil), Label: &plumbv1.Label{Claims: []plumbv1.ClaimVerdict{1}}})),
			codes.InvalidArgument, "examples[0].label.claims"},
		{"Feedback to a server without a receipt key", request{method: "/plumb.v1.MonitorService/Feedback", msgs: []proto.Message{&plumbv1.FeedbackRequest{Receipt: "r1.x.y", Label: &plumbv1.Label{Answers: []string{"A"}}}}}, codes.FailedPrecondition, "receipt"},
		{"FeedbackStream to a server without a receipt key", request{method: "/plumb.v1.MonitorService/FeedbackStream", stream: true, msgs: []proto.Message{
			&plumbv1.FeedbackRequest{Receipt: "r1.x.y", Label: &plumbv1.Label{Answers: []string{"A"}}},
			&plumbv1.FeedbackRequest{Receipt: "r1.x.z", Label: &plumbv1.Label{Answers: []string{"B"}}}}}, codes.FailedPrecondition, "receipt"},
		{"GetMonitor", request{method: "/plumb.v1.MonitorService/GetMonitor", msgs: []proto.Message{&plumbv1.GetMonitorRequest{}}}, codes.OK, ""},
		{"GetMonitor with a negative window", request{method: "/plumb.v1.MonitorService/GetMonitor", msgs: []proto.Message{&plumbv1.GetMonitorRequest{Window: -1}}}, codes.InvalidArgument, "window"},
		{"GetProfile", request{method: "/plumb.v1.ProfileService/GetProfile", msgs: []proto.Message{&plumbv1.GetProfileRequest{Name: "p"}}}, codes.OK, ""},
		{"GetProfile of a version not stored", request{method: "/plumb.v1.ProfileService/GetProfile", msgs: []proto.Message{&plumbv1.GetProfileRequest{Name: "p", Version: 5}}}, codes.NotFound, ""},
		{"ListProfiles", request{method: "/plumb.v1.ProfileService/ListProfiles", msgs: []proto.Message{&plumbv1.ListProfilesRequest{}}}, codes.OK, ""},
		{"ListProfiles, a page of 1", request{method: "/plumb.v1.ProfileService/ListProfiles", msgs: []proto.Message{&plumbv1.ListProfilesRequest{PageSize: 1}}}, codes.OK, ""},
		{"ListProfiles, a page too large", request{method: "/plumb.v1.ProfileService/ListProfiles", msgs: []proto.Message{&plumbv1.ListProfilesRequest{PageSize: 1001}}}, codes.InvalidArgument, "page_size"},
		{"ListProfiles, a forged page token", request{method: "/plumb.v1.ProfileService/ListProfiles", msgs: []proto.Message{&plumbv1.ListProfilesRequest{PageToken: "not-a-token"}}}, codes.InvalidArgument, "page_token"},
		{"ListProfiles of a bad name", request{method: "/plumb.v1.ProfileService/ListProfiles", msgs: []proto.Message{&plumbv1.ListProfilesRequest{Name: "-x"}}}, codes.InvalidArgument, "name"},
		{"ActivateProfile", request{method: "/plumb.v1.ProfileService/ActivateProfile", msgs: []proto.Message{&plumbv1.ActivateProfileRequest{Name: "p", Version: 1}}}, codes.OK, ""},
		{"ActivateProfile without a version", request{method: "/plumb.v1.ProfileService/ActivateProfile", msgs: []proto.Message{&plumbv1.ActivateProfileRequest{Name: "p"}}}, codes.InvalidArgument, "version"},
		{"DeleteProfile of the active version", request{method: "/plumb.v1.ProfileService/DeleteProfile", msgs: []proto.Message{&plumbv1.DeleteProfileRequest{Name: "p", Version: 1}}}, codes.FailedPrecondition, ""},
		{"ImportProfile without a profile", request{method: "/plumb.v1.ProfileService/ImportProfile", msgs: []proto.Message{&plumbv1.ImportProfileRequest{}}}, codes.InvalidArgument, "profile"},
		{"ImportProfile of the default", request{method: "/plumb.v1.ProfileService/ImportProfile", msgs: []proto.Message{&plumbv1.ImportProfileRequest{Profile: &plumbv1.Profile{Name: "d"}}}}, codes.InvalidArgument, "profile.calibrated"},
		{"Fit with a bad config", fitStream(fitConfig(&plumbv1.FitConfig{Alpha: 2})), codes.InvalidArgument, "config.alpha"},
		{"Fit with an unknown temperature", fitStream(fitConfig(&plumbv1.FitConfig{Temperature: 99})), codes.InvalidArgument, "config.temperature"},
		{"Fit with a fit id of 129 bytes", fitStream(fitConfig(&plumbv1.FitConfig{Name: "q", FitId: strings.Repeat("f", 129)})), codes.InvalidArgument, "config.fit_id"},
		{"Fit with a control character in its fit id", fitStream(fitConfig(&plumbv1.FitConfig{Name: "q", FitId: "a\nb"})), codes.InvalidArgument, "config.fit_id"},
		{"Fit without a config", fitStream(fitExample(exs[0])), codes.InvalidArgument, "config"},
		{"Fit with a bad example", fitStream(fitConfig(&plumbv1.FitConfig{Name: "q", DryRun: true}), fitExample(exs[0]),
			fitExample(&plumbv1.LabeledExample{Request: with(func(r *plumbv1.ScoreRequest) { r.Paraphrases[0].Options[0].Logprob = 1 }), Label: &plumbv1.Label{Answers: []string{"A"}}})),
			codes.InvalidArgument, "examples[1].request.paraphrases[0].options[0].logprob"},
		{"Fit on too few examples", fitStream(fitConfig(&plumbv1.FitConfig{Name: "q", DryRun: true}), fitExample(exs[0])), codes.FailedPrecondition, "examples"},
		{"Evaluate", request{method: "/plumb.v1.ProfileService/Evaluate", stream: true, msgs: []proto.Message{
			&plumbv1.EvaluateRequest{Message: &plumbv1.EvaluateRequest_Config{Config: &plumbv1.EvaluateConfig{Profile: "p"}}},
			&plumbv1.EvaluateRequest{Message: &plumbv1.EvaluateRequest_Example{Example: exs[400]}}}}, codes.OK, ""},
		{"Evaluate of an unknown profile", request{method: "/plumb.v1.ProfileService/Evaluate", stream: true, msgs: []proto.Message{
			&plumbv1.EvaluateRequest{Message: &plumbv1.EvaluateRequest_Config{Config: &plumbv1.EvaluateConfig{Profile: "nope"}}}}}, codes.NotFound, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range protocols(t, h) {
				got := p.call(ctx, tc.req.method, "", tc.req.bytes(t, p), tc.req.stream)
				if got.code != tc.code || got.field != tc.field {
					t.Errorf("%s: %v on %q, want %v on %q", p.name, got.code, got.field, tc.code, tc.field)
				}
			}
		})
	}
}

// longAnswer returns a long answer of two claims and one wording of three passages, edited by
// f.
func longAnswer(f func(*plumbv1.ScoreRequest)) *plumbv1.ScoreRequest {
	r := &plumbv1.ScoreRequest{Claims: []*plumbv1.Claim{{Id: "a", Text: "Ada Lovelace wrote the first program."}, {Id: "b", Text: "She was born in Paris."}},
		Paraphrases: []*plumbv1.Paraphrase{{Samples: []*plumbv1.Sample{
			{Text: "Ada Lovelace wrote the first program for the Analytical Engine."},
			{Text: "Lovelace, born in London, wrote a program."}, {Text: "Ada Lovelace was a mathematician."}}}}}
	if f != nil {
		f(r)
	}
	return r
}

func wordings(n int) []*plumbv1.Paraphrase {
	out := make([]*plumbv1.Paraphrase, n)
	for i := range out {
		out[i] = para(opts("A,B", -0.2, -1.8))
	}
	return out
}

func manyOpts(n int) []*plumbv1.Option {
	out := make([]*plumbv1.Option, n)
	for i := range out {
		out[i] = &plumbv1.Option{Label: fmt.Sprint("o", i), Logprob: -10}
	}
	return out
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStreamConformance: a ScoreStream answers in order on every protocol; a request the engine
// refuses, and one that does not decode, are answered with the same item error, and the stream
// goes on.
func TestStreamConformance(t *testing.T) {
	h := start(t, Config{}, nil)
	ctx := context.Background()
	good := func(id string) *plumbv1.ScoreRequest {
		return &plumbv1.ScoreRequest{Id: id, Paraphrases: []*plumbv1.Paraphrase{para(opts("A,B", -0.2, -1.8))}}
	}
	refused := good("refused")
	refused.Paraphrases[0].Options[0].Logprob = 0.5
	undecodable := good("Q")
	for _, p := range protocols(t, h) {
		t.Run(p.name, func(t *testing.T) {
			msgs := [][]byte{p.encode(t, good("a")), p.encode(t, refused), p.encode(t, undecodable), p.encode(t, good("b"))}
			msgs[2] = []byte(strings.Replace(string(msgs[2]), "Q", "\xff", 1))
			got := p.call(ctx, "/plumb.v1.ConfidenceService/ScoreStream", "", msgs, true)
			if got.code != codes.OK || len(got.resps) != 4 {
				t.Fatalf("%v, %d responses, want OK and 4", got.code, len(got.resps))
			}
			want := []struct {
				id    string
				code  codes.Code
				field string
			}{{"a", codes.OK, ""}, {"refused", codes.InvalidArgument, "paraphrases[0].options[0].logprob"}, {"", codes.InvalidArgument, "id"}, {"b", codes.OK, ""}}
			for i, w := range want {
				var r plumbv1.ScoreResponse
				p.decode(t, got.resps[i], &r)
				if r.GetId() != w.id || codes.Code(r.GetError().GetCode()) != w.code || r.GetError().GetField() != w.field {
					t.Errorf("response %d: id %q, error %v, want id %q, %v on %q", i, r.GetId(), r.GetError(), w.id, w.code, w.field)
				}
			}
		})
	}
}

// TestChecksConformance: auth and roles, the rate limit and recovery from a panic answer alike on
// every protocol.
func TestChecksConformance(t *testing.T) {
	tokens := []Token{{Value: "score-token-0123456789", Role: RoleScore}, {Value: "admin-token-0123456789", Role: RoleAdmin}}
	h := start(t, Config{Tokens: tokens}, nil)
	ctx := context.Background()
	req := &plumbv1.ScoreRequest{Paraphrases: []*plumbv1.Paraphrase{para(opts("A,B", -0.2, -1.8))}}
	del := &plumbv1.DeleteProfileRequest{Name: "nothing"}
	for _, p := range protocols(t, h) {
		for _, tc := range []struct {
			name, method, token string
			msg                 proto.Message
			code                codes.Code
		}{
			{"no token", "/plumb.v1.ConfidenceService/Score", "", req, codes.Unauthenticated},
			{"a wrong token", "/plumb.v1.ConfidenceService/Score", "wrong", req, codes.Unauthenticated},
			{"a score token scores", "/plumb.v1.ConfidenceService/Score", tokens[0].Value, req, codes.OK},
			{"a score token deletes", "/plumb.v1.ProfileService/DeleteProfile", tokens[0].Value, del, codes.PermissionDenied},
			{"an admin token deletes", "/plumb.v1.ProfileService/DeleteProfile", tokens[1].Value, del, codes.NotFound},
		} {
			if got := p.call(ctx, tc.method, tc.token, [][]byte{p.encode(t, tc.msg)}, false); got.code != tc.code {
				t.Errorf("%s, %s: %v, want %v", p.name, tc.name, got.code, tc.code)
			}
		}
	}
	h2 := start(t, Config{}, nil)
	h2.srv.scoreHook = func() { panic("injected") }
	for _, p := range protocols(t, h2) {
		if got := p.call(ctx, "/plumb.v1.ConfidenceService/Score", "", [][]byte{p.encode(t, req)}, false); got.code != codes.Internal {
			t.Errorf("%s: a panic answers %v, want Internal", p.name, got.code)
		}
	}
	h2.srv.scoreHook = nil
	h3 := start(t, Config{RateLimit: 0.001, RateBurst: 1}, nil)
	for _, p := range protocols(t, h3) {
		// The burst of 1 is shared by the server: the first call of all may pass, no second.
		p.call(ctx, "/plumb.v1.ConfidenceService/Score", "", [][]byte{p.encode(t, req)}, false)
		if got := p.call(ctx, "/plumb.v1.ConfidenceService/Score", "", [][]byte{p.encode(t, req)}, false); got.code != codes.ResourceExhausted {
			t.Errorf("%s: past the rate limit, %v, want ResourceExhausted", p.name, got.code)
		}
	}
}
