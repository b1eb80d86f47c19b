package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"google.golang.org/grpc/credentials"

	"github.com/plumbhq/plumb/client"
	"github.com/plumbhq/plumb/monitor"
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
	// monitor stores outcomes and reports monitors.
	monitor() monitorAPI
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
	receiptKey           string // in-process: the key of the receipts fed back (plumb feedback)
	streams              int
	// TLS to the server: system roots with --tls, or the CAs of --tls-ca; a client certificate
	// for servers that ask for one (--client-ca).
	tls                                   bool
	tlsCA, tlsServerName, tlsCert, tlsKey string
}

func (t *target) register(fs *flagSet) {
	fs.StringVar(&t.server, "server", "", "a plumb server (host:port), several (a:port,b:port) or a gRPC target (dns:///name:port); empty works in-process on --store")
	fs.StringVar(&t.store, "store", defaultStore(), "profile store for in-process work: a bbolt file or a postgres:// URL ($PLUMB_STORE)")
	fs.StringVar(&t.token, "token", os.Getenv("PLUMB_TOKEN"), "bearer token for --server ($PLUMB_TOKEN)")
	fs.BoolVar(&t.tls, "tls", false, "connect to --server over TLS, trusting the system's CAs")
	fs.StringVar(&t.tlsCA, "tls-ca", "", "connect to --server over TLS, trusting the CAs in this PEM file")
	fs.StringVar(&t.tlsServerName, "tls-server-name", "", "the name the server's certificate must have (default: the host of --server)")
	fs.StringVar(&t.tlsCert, "tls-cert", "", "client certificate (PEM) for a server that asks for one")
	fs.StringVar(&t.tlsKey, "tls-key", "", "client key (PEM) of --tls-cert")
}

// transport returns the TLS credentials the flags ask for, or nil for plaintext.
func (t *target) transport() (credentials.TransportCredentials, error) {
	if !t.tls && t.tlsCA == "" && t.tlsServerName == "" && t.tlsCert == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.tlsServerName}
	if t.tlsCA != "" {
		pem, err := os.ReadFile(t.tlsCA)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca: %s holds no PEM certificate", t.tlsCA)
		}
	}
	if (t.tlsCert == "") != (t.tlsKey == "") {
		return nil, fmt.Errorf("--tls-cert and --tls-key go together")
	}
	if t.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(t.tlsCert, t.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert, --tls-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return credentials.NewTLS(cfg), nil
}

// loopback reports whether every address of a --server value is this machine's.
func loopback(server string) bool {
	for _, a := range strings.Split(server, ",") {
		a = strings.TrimPrefix(strings.TrimSpace(a), "dns:///")
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			host = a
		}
		if !loopbackHost(host) {
			return false
		}
	}
	return true
}

// loopbackHost reports whether a host is this machine's alone: localhost or a loopback IP.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// defaultStore is the store used without --store: $PLUMB_STORE, else plumb.db in the user's
// data directory ($XDG_DATA_HOME/plumb, ~/.local/share/plumb; the user configuration
// directory's plumb on macOS and Windows), so that commands run in any directory share one
// store and leave no file behind them.
func defaultStore() string {
	if v := os.Getenv("PLUMB_STORE"); v != "" {
		return v
	}
	dir := os.Getenv("XDG_DATA_HOME")
	if dir == "" {
		switch home, err := os.UserHomeDir(); {
		case runtime.GOOS == "darwin" || runtime.GOOS == "windows":
			if d, err := os.UserConfigDir(); err == nil {
				dir = d
			}
		case err == nil:
			dir = filepath.Join(home, ".local", "share")
		}
	}
	if dir == "" {
		return "plumb.db"
	}
	return filepath.Join(dir, "plumb", "plumb.db")
}

// ensureStoreDir makes the directory of a bbolt store file (private to the user) when it does
// not exist, so that the default store works on a fresh machine.
func ensureStoreDir(spec string) error {
	if store.IsPostgres(spec) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(spec), 0o700); err != nil {
		return fmt.Errorf("--store %s: %w", spec, err)
	}
	return nil
}

func (t *target) open(std stdio) (backend, error) {
	if t.server != "" {
		creds, err := t.transport()
		if err != nil {
			return nil, err
		}
		if t.token != "" && creds == nil && !loopback(t.server) {
			fmt.Fprintln(std.err, "plumb: warning: the token goes to", t.server, "in plaintext: give --tls or --tls-ca")
		}
		c, err := client.Dial(t.server, &client.Options{Token: t.token, TLS: creds})
		if err != nil {
			return nil, fmt.Errorf("--server %s: %w", t.server, err)
		}
		return &remote{c: c, streams: t.streams}, nil
	}
	if err := ensureStoreDir(t.store); err != nil {
		return nil, err
	}
	st, err := store.OpenAny(context.Background(), t.store, store.PostgresConfig{})
	if err != nil {
		return nil, err
	}
	var opts []service.Option
	if t.receiptKey != "" {
		key, err := monitor.ReadKeyFile(t.receiptKey)
		if err == nil {
			var signer *monitor.Signer
			if signer, err = monitor.NewSigner(key); err == nil {
				opts = append(opts, service.Receipts(signer))
			}
		}
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("--receipt-key-file: %w", err)
		}
	}
	return &local{svc: service.New(st, opts...), st: st}, nil
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

// profileArg reads the NAME and optional VERSION of a profiles subcommand: NAME VERSION or
// NAME@VERSION.
func profileArg(sub string, args []string) (string, int64, error) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return "", 0, usageError("plumb profiles %s: a profile name is required", sub)
	}
	name, ver := args[0], ""
	if n, v, ok := strings.Cut(name, "@"); ok {
		name, ver = n, v
		if len(args) > 1 {
			return "", 0, usageError("plumb profiles %s: NAME@VERSION or NAME VERSION, not both", sub)
		}
	} else if len(args) > 1 {
		ver = args[1]
	}
	if len(args) > 2 {
		return "", 0, usageError("plumb profiles %s: unexpected %q", sub, args[2])
	}
	var v int64
	if ver != "" {
		var err error
		if v, err = strconv.ParseInt(ver, 10, 64); err != nil || v < 0 {
			return "", 0, usageError("plumb profiles %s: version %q: want a whole number", sub, ver)
		}
	}
	return name, v, nil
}
