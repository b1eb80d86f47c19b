package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/proto/plumb/v1/plumbv1connect"
)

// post sends body to the HTTP front end as curl -d does, with a JSON content type.
func post(t *testing.T, url, body string, header ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestHTTPMatchesGRPC: the README's curl call — the example request as JSON to
// /plumb.v1.ConfidenceService/Score — returns what gRPC returns (proto.Equal after decoding),
// under the built-in profile and a fitted one; so do the profile calls that fit nothing.
func TestHTTPMatchesGRPC(t *testing.T) {
	h := start(t, Config{}, nil)
	ctx := context.Background()
	exs := mmluExamples(t)
	if _, err := h.c.Fit(ctx, &plumbv1.FitConfig{Name: "mmlu", Activate: proto.Bool(true)}, seq(exs[:300])); err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../testdata/score-request.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, profile := range []string{"", "mmlu"} {
		body := string(example)
		if profile != "" {
			body = strings.Replace(body, "{", `{"profile": "`+profile+`",`, 1)
		}
		code, b := post(t, h.http+"/plumb.v1.ConfidenceService/Score", body)
		if code != http.StatusOK {
			t.Fatalf("HTTP %d: %s", code, b)
		}
		var overHTTP plumbv1.ScoreResponse
		if err := protojson.Unmarshal(b, &overHTTP); err != nil {
			t.Fatal(err)
		}
		var req plumbv1.ScoreRequest
		if err := protojson.Unmarshal([]byte(body), &req); err != nil {
			t.Fatal(err)
		}
		overGRPC, err := h.c.Score(ctx, &req)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&overHTTP, overGRPC) {
			t.Fatalf("profile %q: HTTP and gRPC differ:\n%v\n%v", profile, &overHTTP, overGRPC)
		}
	}
	for _, call := range []struct {
		procedure, body string
		grpc            func() (proto.Message, error)
		msg             proto.Message
	}{
		{"/plumb.v1.ProfileService/ListProfiles", `{}`, func() (proto.Message, error) {
			return h.c.Profiles.ListProfiles(ctx, &plumbv1.ListProfilesRequest{})
		}, &plumbv1.ListProfilesResponse{}},
		{"/plumb.v1.ProfileService/GetProfile", `{"name": "mmlu"}`, func() (proto.Message, error) {
			return h.c.Profiles.GetProfile(ctx, &plumbv1.GetProfileRequest{Name: "mmlu"})
		}, &plumbv1.GetProfileResponse{}},
	} {
		code, b := post(t, h.http+call.procedure, call.body)
		if code != http.StatusOK {
			t.Fatalf("%s: HTTP %d: %s", call.procedure, code, b)
		}
		if err := protojson.Unmarshal(b, call.msg); err != nil {
			t.Fatal(err)
		}
		want, err := call.grpc()
		if err != nil || !proto.Equal(call.msg, want) {
			t.Fatalf("%s: HTTP and gRPC differ (%v)", call.procedure, err)
		}
	}
}

// connectErrorJSON is Connect's error body.
type connectErrorJSON struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Details []struct {
		Type  string `json:"type"`
		Debug struct {
			FieldViolations []struct {
				Field string `json:"field"`
			} `json:"fieldViolations"`
		} `json:"debug"`
	} `json:"details"`
}

// TestHTTPErrors: a bad request is Connect's invalid_argument with the field path in the message
// and in a google.rpc.BadRequest detail; roles hold as on gRPC; an undecodable body is
// invalid_argument.
func TestHTTPErrors(t *testing.T) {
	h := start(t, Config{Tokens: []Token{{"score-token-0123456789", RoleScore}, {"admin-token-0123456789", RoleAdmin}}}, nil)
	bad := `{"paraphrases": [{"options": [{"label": "A", "logprob": 0.5}, {"label": "B", "logprob": -1}]}]}`
	score := "/plumb.v1.ConfidenceService/Score"
	code, b := post(t, h.http+score, bad, "Authorization", "Bearer score-token-0123456789")
	var e connectErrorJSON
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if code != http.StatusBadRequest || e.Code != "invalid_argument" || !strings.Contains(e.Message, "paraphrases[0].options[0].logprob") ||
		len(e.Details) != 1 || e.Details[0].Type != "google.rpc.BadRequest" || len(e.Details[0].Debug.FieldViolations) != 1 ||
		e.Details[0].Debug.FieldViolations[0].Field != "paraphrases[0].options[0].logprob" {
		t.Fatalf("HTTP %d: %s", code, b)
	}
	for _, tc := range []struct {
		name, procedure, body, token, want string
	}{
		{"no token", score, `{}`, "", "unauthenticated"},
		{"wrong token", score, `{}`, "nope", "unauthenticated"},
		{"score token on an admin call", "/plumb.v1.ProfileService/DeleteProfile", `{"name": "p"}`, "score-token-0123456789", "permission_denied"},
		{"admin token", "/plumb.v1.ProfileService/DeleteProfile", `{"name": "p"}`, "admin-token-0123456789", "not_found"},
		{"not JSON", score, `{not json`, "score-token-0123456789", "invalid_argument"},
		{"not UTF-8", score, "{\"id\": \"\xff\"}", "score-token-0123456789", "invalid_argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.token != "" {
				hdr = []string{"Authorization", "Bearer " + tc.token}
			}
			_, b := post(t, h.http+tc.procedure, tc.body, hdr...)
			var e connectErrorJSON
			if err := json.Unmarshal(b, &e); err != nil || e.Code != tc.want {
				t.Fatalf("%s, want %s", b, tc.want)
			}
		})
	}
}

// TestHTTPStreams: Fit (a client stream) and ScoreStream (both ways) work over HTTP/2 with
// connect-go's client, as over gRPC.
func TestHTTPStreams(t *testing.T) {
	h := start(t, Config{}, nil)
	ctx := context.Background()
	hc := &http.Client{Transport: &http.Transport{Protocols: func() *http.Protocols {
		p := new(http.Protocols)
		p.SetUnencryptedHTTP2(true)
		return p
	}()}}
	profiles := plumbv1connect.NewProfileServiceClient(hc, h.http)
	fit := profiles.Fit(ctx)
	fit.Send(&plumbv1.FitRequest{Message: &plumbv1.FitRequest_Config{Config: &plumbv1.FitConfig{Name: "http"}}})
	exs := mmluExamples(t)[:200]
	for _, ex := range exs {
		if err := fit.Send(&plumbv1.FitRequest{Message: &plumbv1.FitRequest_Example{Example: ex}}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := fit.CloseAndReceive()
	if err != nil || resp.Msg.GetProfile().GetVersion() != 1 {
		t.Fatalf("Fit over HTTP: %v, %v", resp, err)
	}
	conf := plumbv1connect.NewConfidenceServiceClient(hc, h.http)
	stream := conf.ScoreStream(ctx)
	for i, ex := range exs[:5] {
		r := proto.CloneOf(ex.GetRequest())
		r.Id, r.Profile = string(rune('a'+i)), "http"
		if err := stream.Send(r); err != nil {
			t.Fatal(err)
		}
	}
	stream.CloseRequest()
	var ids bytes.Buffer
	for {
		r, err := stream.Receive()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		ids.WriteString(r.GetId())
	}
	if ids.String() != "abcde" {
		t.Fatalf("ScoreStream over HTTP answered %q, want abcde in order", ids.String())
	}
}

// TestHTTPExtras: health endpoints, the badge and the demo page, and CORS for a listed origin
// only.
func TestHTTPExtras(t *testing.T) {
	h := start(t, Config{CORSOrigins: []string{"https://app.example"}}, nil)
	get := func(path string, header ...string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, h.http+path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for path, ct := range map[string]string{"/healthz": "", "/readyz": "", "/badge.js": "text/javascript", "/": "text/html", "/example-request.json": "application/json"} {
		if r := get(path); r.StatusCode != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), ct) {
			t.Errorf("GET %s: %d %s", path, r.StatusCode, r.Header.Get("Content-Type"))
		}
	}
	preflight := func(origin string) string {
		req, _ := http.NewRequest(http.MethodOptions, h.http+"/plumb.v1.ConfidenceService/Score", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		// As browsers send it: lowercase, sorted, comma-separated.
		req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("Access-Control-Allow-Origin")
	}
	if got := preflight("https://app.example"); got != "https://app.example" {
		t.Errorf("a listed origin: Access-Control-Allow-Origin %q", got)
	}
	if got := preflight("https://evil.example"); got != "" {
		t.Errorf("an unlisted origin: Access-Control-Allow-Origin %q", got)
	}
	h.srv.Shutdown()
	if r := get("/readyz"); r.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz while shutting down: %d", r.StatusCode)
	}
}

func protojsonMarshal(m proto.Message) ([]byte, error) { return protojson.Marshal(m) }

func protojsonUnmarshal(b []byte, m proto.Message) error { return protojson.Unmarshal(b, m) }

// TestHTTPGRPCWebAndLimits: a gRPC-Web client (connect-go's) gets gRPC's answer; a body over the
// message limit is resource_exhausted, as on gRPC.
func TestHTTPGRPCWebAndLimits(t *testing.T) {
	h := start(t, Config{MaxMessageBytes: 64 << 10}, nil)
	ctx := context.Background()
	req := &plumbv1.ScoreRequest{Id: "web", Paraphrases: []*plumbv1.Paraphrase{para(opts("A,B,C", -0.3, -1.5, -2.5)), para(opts("A,B,C", -0.4, -1.2, -2.9))}}
	web := plumbv1connect.NewConfidenceServiceClient(http.DefaultClient, h.http, connect.WithGRPCWeb())
	got, err := web.Score(ctx, connect.NewRequest(req))
	if err != nil {
		t.Fatalf("gRPC-Web: %v", err)
	}
	want, err := h.c.Score(ctx, req)
	if err != nil || !proto.Equal(got.Msg, want) {
		t.Fatalf("gRPC-Web and gRPC differ (%v)", err)
	}
	big, _ := protojsonMarshal(&plumbv1.ScoreRequest{Id: strings.Repeat("x", 100<<10), Paraphrases: req.Paraphrases})
	_, b := post(t, h.http+"/plumb.v1.ConfidenceService/Score", string(big))
	var e connectErrorJSON
	if err := json.Unmarshal(b, &e); err != nil || e.Code != "resource_exhausted" {
		t.Fatalf("a body over the limit: %s", b)
	}
}

// TestStreamShape: a Fit or Evaluate stream must open with its config and carry it once, on
// both front ends: without one first it is InvalidArgument saying which config; a second config
// is InvalidArgument naming its message; nothing is stored either way.
func TestStreamShape(t *testing.T) {
	h := start(t, Config{}, nil)
	ctx := context.Background()
	ex := mmluExamples(t)[0]
	cfg := &plumbv1.FitRequest{Message: &plumbv1.FitRequest_Config{Config: &plumbv1.FitConfig{Name: "shape"}}}
	example := &plumbv1.FitRequest{Message: &plumbv1.FitRequest_Example{Example: ex}}
	for _, tc := range []struct {
		name string
		msgs []*plumbv1.FitRequest
		want string
	}{
		{"no config", []*plumbv1.FitRequest{example}, "config: the first message must be a FitConfig"},
		{"empty", nil, "config: the first message must be a FitConfig"},
		{"second config", []*plumbv1.FitRequest{cfg, example, cfg}, "messages[2]: a config after the first message"},
	} {
		t.Run("grpc/"+tc.name, func(t *testing.T) {
			stream, err := h.c.Profiles.Fit(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range tc.msgs {
				stream.Send(m)
			}
			_, err = stream.CloseAndRecv()
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tc.want) {
				t.Fatalf("got %v, want InvalidArgument %q", err, tc.want)
			}
		})
		t.Run("http/"+tc.name, func(t *testing.T) {
			stream := plumbv1connect.NewProfileServiceClient(http.DefaultClient, h.http).Fit(ctx)
			for _, m := range tc.msgs {
				stream.Send(m)
			}
			_, err := stream.CloseAndReceive()
			if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want invalid_argument %q", err, tc.want)
			}
		})
	}
	ev, err := h.c.Profiles.Evaluate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ev.Send(&plumbv1.EvaluateRequest{Message: &plumbv1.EvaluateRequest_Example{Example: ex}})
	if _, err := ev.CloseAndRecv(); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "must be a EvaluateConfig") {
		t.Fatalf("Evaluate without a config: %v", err)
	}
	if list, err := h.c.Profiles.ListProfiles(ctx, &plumbv1.ListProfilesRequest{}); err != nil || len(list.GetProfiles()) != 0 {
		t.Fatalf("profiles after refused streams: %v, %v", list, err)
	}
}
