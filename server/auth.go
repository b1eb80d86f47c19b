package server

import (
	"bufio"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// Role is what a bearer token may do.
type Role int

const (
	// RoleScore may score (ConfidenceService), read profiles (GetProfile, ListProfiles), and
	// send feedback and read monitors (MonitorService; feedback never changes a profile):
	// the token a chat backend or a product UI holds.
	RoleScore Role = iota + 1
	// RoleAdmin may also fit, evaluate, activate and delete profiles.
	RoleAdmin
)

func (r Role) String() string {
	switch r {
	case RoleScore:
		return "score"
	case RoleAdmin:
		return "admin"
	}
	return "none"
}

// Token is an accepted bearer token and its role.
type Token struct {
	Value string
	Role  Role
}

// scoreMethods are the methods a score token may call, as full method names or service
// prefixes.
var scoreMethods = []string{
	"/plumb.v1.ConfidenceService/",
	"/plumb.v1.ProfileService/GetProfile",
	"/plumb.v1.ProfileService/ListProfiles",
	"/plumb.v1.MonitorService/",
	"/plumb.bench.v1.BaselineService/",
}

// Allows reports whether role r may call the full method name ("/package.Service/Method"). The
// HTTP front end names its procedures the same way.
func (r Role) Allows(method string) bool {
	switch r {
	case RoleAdmin:
		return true
	case RoleScore:
		for _, m := range scoreMethods {
			if method == m || strings.HasSuffix(m, "/") && strings.HasPrefix(method, m) {
				return true
			}
		}
	}
	return false
}

// ReadTokens reads a tokens file: one token a line, "ROLE TOKEN" with ROLE score or admin;
// blank lines and lines starting with # are skipped. A bare TOKEN line (the format of earlier
// releases) is an admin token, and earns a warning. Errors name the file and line, never the
// token.
func ReadTokens(name string) (tokens []Token, warnings []string, err error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	return parseTokens(f, name)
}

func parseTokens(r io.Reader, name string) (tokens []Token, warnings []string, err error) {
	sc := bufio.NewScanner(r)
	seen := map[string]int{}
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		var t Token
		switch {
		case len(fields) == 1:
			t = Token{Value: fields[0], Role: RoleAdmin}
			warnings = append(warnings, fmt.Sprintf("%s:%d: a token without a role is an admin token; write \"admin TOKEN\" or \"score TOKEN\"", name, n))
		case len(fields) == 2 && fields[0] == "score":
			t = Token{Value: fields[1], Role: RoleScore}
		case len(fields) == 2 && fields[0] == "admin":
			t = Token{Value: fields[1], Role: RoleAdmin}
		default:
			return nil, nil, fmt.Errorf("%s:%d: want \"score TOKEN\" or \"admin TOKEN\" (a role, a space, a token without spaces)", name, n)
		}
		if len(t.Value) < 16 {
			warnings = append(warnings, fmt.Sprintf("%s:%d: a token of %d characters is easy to guess; use at least 16 random characters", name, n, len(t.Value)))
		}
		if first, ok := seen[t.Value]; ok {
			return nil, nil, fmt.Errorf("%s:%d: the token of line %d again", name, n, first)
		}
		seen[t.Value] = n
		tokens = append(tokens, t)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(tokens) == 0 {
		return nil, nil, fmt.Errorf("%s holds no token", name)
	}
	return tokens, warnings, nil
}

// permit checks a bearer token, then its role against the full method name called: an
// Unauthenticated or PermissionDenied status, or nil (admit calls it for both transports).
func (s *Server) permit(tok, method string) error {
	role := s.roleOf(tok)
	if role == 0 {
		return status.Error(codes.Unauthenticated, "invalid bearer token")
	}
	if !role.Allows(method) {
		return status.Errorf(codes.PermissionDenied, "%s needs an admin token; this one has the role %s", method, role)
	}
	return nil
}

// roleOf returns the role of token tok, 0 when none: every accepted token is compared, in
// constant time, so the time taken says nothing of which matched.
func (s *Server) roleOf(tok string) Role {
	var role Role
	for _, t := range s.cfg.Tokens {
		if subtle.ConstantTimeCompare([]byte(tok), []byte(t.Value)) == 1 {
			role = t.Role
		}
	}
	return role
}

// TLSCredentials loads a server certificate and key and, when clientCA is not empty, requires
// every client to present a certificate that the CAs in that PEM file signed (mutual TLS).
func TLSCredentials(certFile, keyFile, clientCA string) (credentials.TransportCredentials, error) {
	cfg, err := TLSConfig(certFile, keyFile, clientCA)
	if err != nil {
		return nil, err
	}
	return credentials.NewTLS(cfg), nil
}

// TLSConfig is TLSCredentials as a tls.Config, for the HTTP front end.
func TLSConfig(certFile, keyFile, clientCA string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert, --tls-key: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCA != "" {
		pem, err := os.ReadFile(clientCA)
		if err != nil {
			return nil, fmt.Errorf("--client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--client-ca: %s holds no PEM certificate", clientCA)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}
