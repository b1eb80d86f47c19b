package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/plumbhq/plumb/client"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/proto/plumb/v1/plumbv1connect"
	"github.com/plumbhq/plumb/service"
)

// rawCodec sends bytes as they are, so a test can send what no protobuf library would write.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }

func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

// badUTF8 returns the wire form of a good request whose second option label is the byte 0xff.
func badUTF8(t *testing.T) []byte {
	t.Helper()
	b, err := proto.Marshal(&plumbv1.ScoreRequest{Id: "q1", Paraphrases: []*plumbv1.Paraphrase{para(opts("A,Z", -0.2, -1.8))}})
	if err != nil {
		t.Fatal(err)
	}
	i := strings.IndexByte(string(b), 'Z')
	b[i] = 0xff
	return b
}

// TestInvalidUTF8: a request with invalid UTF-8 in a string field is InvalidArgument naming the
// field (it used to be Internal); in a ScoreStream it is answered with an item error and the
// stream goes on.
func TestInvalidUTF8(t *testing.T) {
	h := start(t, Config{}, nil)
	ctx := context.Background()
	raw := badUTF8(t)
	var out []byte
	err := h.c.Conn().Invoke(ctx, "/plumb.v1.ConfidenceService/Score", &raw, &out, grpc.ForceCodec(rawCodec{}))
	if status.Code(err) != codes.InvalidArgument || field(err) != "paraphrases[0].options[1].label" {
		t.Fatalf("Score: %v (field %q), want InvalidArgument on paraphrases[0].options[1].label", err, field(err))
	}

	stream, err := h.c.Conn().NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true},
		"/plumb.v1.ConfidenceService/ScoreStream", grpc.ForceCodec(rawCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	good, _ := proto.Marshal(&plumbv1.ScoreRequest{Id: "q2", Paraphrases: []*plumbv1.Paraphrase{para(opts("A,B", -0.2, -1.8))}})
	for _, m := range [][]byte{raw, good} {
		if err := stream.SendMsg(&m); err != nil {
			t.Fatal(err)
		}
	}
	stream.CloseSend()
	var resps []*plumbv1.ScoreResponse
	for {
		var b []byte
		if err := stream.RecvMsg(&b); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		r := new(plumbv1.ScoreResponse)
		if err := proto.Unmarshal(b, r); err != nil {
			t.Fatal(err)
		}
		resps = append(resps, r)
	}
	if len(resps) != 2 || resps[0].GetError().GetField() != "paraphrases[0].options[1].label" ||
		resps[0].GetError().GetCode() != int32(codes.InvalidArgument) || resps[1].GetId() != "q2" || resps[1].GetError() != nil {
		t.Fatalf("ScoreStream answers %v", resps)
	}
	if _, err := h.c.Score(ctx, &plumbv1.ScoreRequest{Paraphrases: []*plumbv1.Paraphrase{para(opts("A,B", -0.2, -1.8))}}); err != nil {
		t.Fatalf("the server stopped serving: %v", err)
	}
}

// TestRoles: a score token scores and reads profiles, and is PermissionDenied on every admin
// call; an admin token does everything; health needs no token.
func TestRoles(t *testing.T) {
	h := start(t, Config{Tokens: []Token{{"score-token-0123456789", RoleScore}, {"admin-token-0123456789", RoleAdmin}}}, nil)
	ctx := context.Background()
	dial := func(tok string) *client.Client {
		c, err := client.Dial(h.addr, &client.Options{Token: tok})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	scorer, admin := dial("score-token-0123456789"), dial("admin-token-0123456789")
	exs := mmluExamples(t)[:200]
	if _, err := admin.Fit(ctx, &plumbv1.FitConfig{Name: "p", Activate: proto.Bool(true)}, seq(exs)); err != nil {
		t.Fatalf("admin Fit: %v", err)
	}
	req := &plumbv1.ScoreRequest{Profile: "p", Paraphrases: []*plumbv1.Paraphrase{para(opts("A,B,C,D", -0.2, -1.8, -3, -4))}}
	calls := []struct {
		name  string
		admin bool // needs an admin token
		call  func(c *client.Client) error
	}{
		{"Score", false, func(c *client.Client) error { _, err := c.Score(ctx, req); return err }},
		{"ScoreStream", false, func(c *client.Client) error {
			for _, err := range c.ScoreAll(ctx, func(yield func(*plumbv1.ScoreRequest) bool) { yield(req) }) {
				return err
			}
			return nil
		}},
		{"GetProfile", false, func(c *client.Client) error {
			_, err := c.Profiles.GetProfile(ctx, &plumbv1.GetProfileRequest{Name: "p"})
			return err
		}},
		{"ListProfiles", false, func(c *client.Client) error {
			_, err := c.Profiles.ListProfiles(ctx, &plumbv1.ListProfilesRequest{})
			return err
		}},
		{"Fit", true, func(c *client.Client) error {
			_, err := c.Fit(ctx, &plumbv1.FitConfig{Name: "p"}, seq(exs))
			return err
		}},
		{"Evaluate", true, func(c *client.Client) error {
			_, err := c.Evaluate(ctx, &plumbv1.EvaluateConfig{Profile: "p"}, seq(exs))
			return err
		}},
		{"ActivateProfile", true, func(c *client.Client) error {
			_, err := c.Profiles.ActivateProfile(ctx, &plumbv1.ActivateProfileRequest{Name: "p", Version: 2})
			return err
		}},
		{"DeleteProfile", true, func(c *client.Client) error {
			_, err := c.Profiles.DeleteProfile(ctx, &plumbv1.DeleteProfileRequest{Name: "p", Version: 1})
			return err
		}},
	}
	for _, tc := range calls {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(scorer)
			if tc.admin && (status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), "admin")) {
				t.Fatalf("score token: %v, want PermissionDenied", err)
			}
			if !tc.admin && err != nil {
				t.Fatalf("score token: %v", err)
			}
			if err := tc.call(admin); err != nil {
				t.Fatalf("admin token: %v", err)
			}
		})
	}
}

func TestReadTokens(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		want       []Token
		warnings   int
		err        string
	}{
		{"roles", "# comment\nscore aaaaaaaaaaaaaaaa\n\nadmin bbbbbbbbbbbbbbbb\n", []Token{{"aaaaaaaaaaaaaaaa", RoleScore}, {"bbbbbbbbbbbbbbbb", RoleAdmin}}, 0, ""},
		{"bare token is admin, with a warning", "cccccccccccccccc\n", []Token{{"cccccccccccccccc", RoleAdmin}}, 1, ""},
		{"short token warned", "score abc\n", []Token{{"abc", RoleScore}}, 1, ""},
		{"unknown role", "reader dddddddddddddddd\n", nil, 0, "f:1: want"},
		{"three fields", "score a b\n", nil, 0, "f:1: want"},
		{"duplicate", "score eeeeeeeeeeeeeeee\nadmin eeeeeeeeeeeeeeee\n", nil, 0, "f:2: the token of line 1 again"},
		{"empty", "# nothing\n", nil, 0, "f holds no token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, warnings, err := parseTokens(strings.NewReader(tc.file), "f")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "dddd") || strings.Contains(err.Error(), "eeee") {
					t.Fatalf("the error shows the token: %v", err)
				}
				return
			}
			if err != nil || len(warnings) != tc.warnings || len(got) != len(tc.want) {
				t.Fatalf("got %v, warnings %q, err %v", got, warnings, err)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("token %d: %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

// ca is a test certificate authority that signs server and client certificates.
type ca struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA(t *testing.T) *ca {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "plumb test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &ca{cert, key, pool}
}

func (c *ca) issue(t *testing.T, serial int64, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "plumb test"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestClientCertificates: with a client CA, a client whose certificate that CA signed scores;
// one without a certificate, or with one another CA signed, cannot connect.
func TestClientCertificates(t *testing.T) {
	auth, other := newCA(t), newCA(t)
	serverCert := auth.issue(t, 2, x509.ExtKeyUsageServerAuth)
	creds := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: auth.pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12})
	clientTLS := func(certs ...tls.Certificate) *client.Options {
		return &client.Options{Timeout: 2 * time.Second,
			TLS: credentials.NewTLS(&tls.Config{RootCAs: auth.pool, Certificates: certs, MinVersion: tls.VersionTLS12})}
	}
	h := start(t, Config{TLS: creds}, clientTLS(auth.issue(t, 3, x509.ExtKeyUsageClientAuth)))
	ctx := context.Background()
	req := &plumbv1.ScoreRequest{Paraphrases: []*plumbv1.Paraphrase{para(opts("A,B", -0.2, -1.8))}}
	if _, err := h.c.Score(ctx, req); err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
	for name, o := range map[string]*client.Options{
		"no certificate":           clientTLS(),
		"another CA's certificate": clientTLS(other.issue(t, 4, x509.ExtKeyUsageClientAuth)),
	} {
		c, _ := client.Dial(h.addr, o)
		_, err := c.Score(ctx, req)
		c.Close()
		if status.Code(err) != codes.Unavailable {
			t.Errorf("%s: %v, want Unavailable", name, err)
		}
	}
}

// TestFitOverCap: a Fit whose examples hold more than the service's cap is ResourceExhausted,
// naming the cap, and stores nothing; so is an Evaluate.
func TestFitOverCap(t *testing.T) {
	h := start(t, Config{}, nil, service.MaxStreamBytes(100<<10))
	ctx := context.Background()
	exs := mmluExamples(t)
	_, err := h.c.Fit(ctx, &plumbv1.FitConfig{Name: "big"}, seq(exs))
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "102400") {
		t.Fatalf("Fit over the cap: %v, want ResourceExhausted naming 102400", err)
	}
	if l, err := h.c.Profiles.ListProfiles(ctx, &plumbv1.ListProfilesRequest{}); err != nil || len(l.GetProfiles()) != 0 {
		t.Fatalf("after a refused fit: %v, %v", l, err)
	}
	if _, err := h.c.Fit(ctx, &plumbv1.FitConfig{Name: "small"}, seq(exs[:150])); err != nil {
		t.Fatalf("a fit within the cap: %v", err)
	}
}

// TestConfigRefused: settings out of range are refused when the server is built.
func TestConfigRefused(t *testing.T) {
	for _, cfg := range []Config{{MaxMessageBytes: -1}, {MaxConnections: -5}, {SendTimeout: -time.Second},
		{Tokens: []Token{{"", RoleAdmin}}}, {Tokens: []Token{{"x", 0}}}} {
		if _, err := New(nil, cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

// TestUnreadStreamEnded: a ScoreStream whose caller sends and never reads is ended once its
// responses have stayed unread for SendTimeout, by closing the caller's connection (its
// trailers could not get past the unread data); other callers are answered meanwhile, and the
// caller's client reconnects.
func TestUnreadStreamEnded(t *testing.T) {
	h := start(t, Config{SendTimeout: 500 * time.Millisecond}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := h.c.Confidence.ScoreStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A long id makes each response large, so the windows fill after a few thousand requests.
	req := &plumbv1.ScoreRequest{Id: strings.Repeat("x", 4000), Paraphrases: []*plumbv1.Paraphrase{para(opts("A,B", -0.2, -1.8))}}
	sendErr := sendUntilError(func() error { return stream.Send(req) })
	if _, err := h.c.Score(ctx, req); err != nil {
		t.Fatalf("another caller meanwhile: %v", err)
	}
	select {
	case err := <-sendErr:
		if !errors.Is(err, io.EOF) {
			t.Fatalf("Send: %v, want io.EOF once the server ends the stream", err)
		}
	case <-ctx.Done():
		t.Fatal("the unread stream was never ended")
	}
	for {
		if _, err := stream.Recv(); err != nil {
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("stream ended with %v, want Unavailable (connection closed)", err)
			}
			break
		}
	}
	if _, err := h.c.Score(ctx, req); err != nil {
		t.Fatalf("after the cut: %v", err)
	}
}

// TestUnreadHTTPStreamEnded: the HTTP form of TestUnreadStreamEnded. A ScoreStream over h2c
// whose caller sends and never reads is ended once its responses stay unread past
// --send-timeout (500 ms here): the caller's sends fail (the test gives up after 30 s), and
// another caller is served meanwhile and after.
func TestUnreadHTTPStreamEnded(t *testing.T) {
	h := start(t, Config{SendTimeout: 500 * time.Millisecond}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A small receive window (64 KiB), so that the responses fill it after a few requests
	// however slowly the server scores (the race detector's pace too).
	hc := &http.Client{Transport: &http.Transport{Protocols: func() *http.Protocols {
		p := new(http.Protocols)
		p.SetUnencryptedHTTP2(true)
		return p
	}(), HTTP2: &http.HTTP2Config{MaxReceiveBufferPerStream: 64 << 10, MaxReceiveBufferPerConnection: 64 << 10}}}
	stream := plumbv1connect.NewConfidenceServiceClient(hc, h.http).ScoreStream(ctx)
	req := &plumbv1.ScoreRequest{Id: strings.Repeat("x", 4000), Paraphrases: []*plumbv1.Paraphrase{para(opts("A,B", -0.2, -1.8))}}
	began := time.Now()
	sendErr := sendUntilError(func() error { return stream.Send(req) })
	if _, err := h.c.Score(ctx, req); err != nil {
		t.Fatalf("another caller meanwhile: %v", err)
	}
	select {
	case <-sendErr:
		t.Logf("the unread stream was ended after %.1f s", time.Since(began).Seconds())
	case <-ctx.Done():
		t.Fatal("the unread HTTP stream was never ended")
	}
	stream.CloseRequest()
	stream.CloseResponse()
	if _, err := h.c.Score(ctx, req); err != nil {
		t.Fatalf("after the stream was ended: %v", err)
	}
}

// sendUntilError calls send until it fails, on a goroutine of its own, and passes on its error.
func sendUntilError(send func() error) <-chan error {
	errc := make(chan error, 1)
	go func() {
		for {
			if err := send(); err != nil {
				errc <- err
				return
			}
		}
	}()
	return errc
}
