package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/plumbhq/plumb/client"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
)

// selfSigned returns a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "plumb test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// TestTLSWithToken: over TLS with a bearer token the client scores; a plaintext client and a
// TLS client without the token are refused.
func TestTLSWithToken(t *testing.T) {
	cert, pool := selfSigned(t)
	creds := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	h := start(t, Config{TLS: creds, Tokens: []Token{{"t0ken", RoleScore}}}, &client.Options{
		Token: "t0ken",
		TLS:   credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}),
	})
	ctx := context.Background()
	req := &plumbv1.ScoreRequest{Paraphrases: []*plumbv1.Paraphrase{para(opts("A,B", -0.2, -1.8))}}
	if _, err := h.c.Score(ctx, req); err != nil {
		t.Fatalf("TLS with token: %v", err)
	}
	plain, _ := client.Dial(h.addr, &client.Options{Token: "t0ken", Timeout: 2 * time.Second})
	defer plain.Close()
	if _, err := plain.Score(ctx, req); status.Code(err) != codes.Unavailable {
		t.Fatalf("plaintext to a TLS server: %v, want Unavailable", err)
	}
	anon, _ := client.Dial(h.addr, &client.Options{TLS: credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})})
	defer anon.Close()
	if _, err := anon.Score(ctx, req); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("TLS without token: %v, want Unauthenticated", err)
	}
}
