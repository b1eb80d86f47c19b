package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// exitOf runs the plumb binary and returns its exit status, stdout and stderr.
func exitOf(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(buildPlumb(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errb.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errb.String()
	}
	t.Fatal(err)
	return 0, "", ""
}

// TestHelp: `plumb help COMMAND` and `plumb COMMAND --help` print, on stdout and with exit
// status 0, the command's description, its usage with positionals, and its flags only; a bad
// flag is exit status 64 with a pointer to --help.
func TestHelp(t *testing.T) {
	for _, tc := range []struct {
		cmd, usage, flag, notFlag string
	}{
		{"score", "plumb score [flags] [FILE|-]", "-profile", "-data"},
		{"fit", "plumb fit --data FILE [flags]", "-temperature", "-http-addr"},
		{"eval", "plumb eval --data FILE [flags]", "-version", "-alpha"},
		{"serve", "plumb serve [flags]", "-http-addr", "-data"},
		{"profiles", "plumb profiles list|get|export|import|activate|delete", "-activate", "-streams"},
		{"demo", "plumb demo [flags]", "-report-dir", "-server"},
		{"simulate", "plumb simulate [flags]", "-samples", "-server"},
	} {
		t.Run(tc.cmd, func(t *testing.T) {
			for _, args := range [][]string{{"help", tc.cmd}, {tc.cmd, "--help"}, {tc.cmd, "-h"}} {
				code, out, stderr := exitOf(t, "", args...)
				if code != 0 || stderr != "" {
					t.Fatalf("%v: exit %d, stderr %q", args, code, stderr)
				}
				for _, want := range []string{"plumb " + tc.cmd + ": ", "Usage:\n  " + tc.usage, "\nFlags:\n", "  " + tc.flag} {
					if !strings.Contains(out, want) {
						t.Errorf("%v: help lacks %q:\n%s", args, want, out)
					}
				}
				if strings.Contains(out, "  "+tc.notFlag+" ") {
					t.Errorf("%v: help lists %s, another command's flag", args, tc.notFlag)
				}
			}
		})
	}
	if code, out, _ := exitOf(t, "", "help"); code != 0 || !strings.Contains(out, "Exit status:") {
		t.Errorf("plumb help: exit %d\n%s", code, out)
	}
	if code, _, stderr := exitOf(t, "", "score", "--bogus"); code != exitUsage || !strings.Contains(stderr, "plumb score --help") {
		t.Errorf("a bad flag: exit %d, stderr %q", code, stderr)
	}
	if code, _, _ := exitOf(t, ""); code != exitUsage {
		t.Errorf("no command: exit %d", code)
	}
	if code, _, _ := exitOf(t, "", "nonsense"); code != exitUsage {
		t.Errorf("an unknown command: exit %d", code)
	}
}

// TestUsageErrors: a mistyped command or subcommand, a bad flag value, a missing or extra
// argument: exit status 64 (EX_USAGE, as documented) with a message naming what is wrong, and
// a suggestion for a typo.
func TestUsageErrors(t *testing.T) {
	db := filepath.Join(t.TempDir(), "plumb.db")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"scroe"}, `unknown command "scroe" (did you mean "score"?)`},
		{[]string{"profiles", "lst", "--store", db}, `unknown subcommand "lst" (did you mean "list"?)`},
		{[]string{"profiles", "activate", "mmlu", "--store", db}, "a version is required"},
		{[]string{"profiles", "activate", "mmlu", "x", "--store", db}, `version "x": want a whole number`},
		{[]string{"profiles", "get", "--store", db}, "a profile name is required"},
		{[]string{"profiles", "--store", db}, "plumb profiles: list [NAME]"},
		{[]string{"fit", "--data", "x.jsonl", "--temperature", "bogus"}, `--temperature "bogus": want auto, global, adaptive or none`},
		{[]string{"fit", "--data", "x.jsonl", "--split", "0.5,0.5"}, `--split "0.5,0.5": want three fractions`},
		{[]string{"fit"}, "--data is required"},
		{[]string{"eval", "--data", "x.jsonl", "--equivalence", "fuzzy"}, `--equivalence "fuzzy"`},
		{[]string{"score", "a.jsonl", "b.jsonl"}, "score reads one file"},
		{[]string{"serve", "--addr", "0.0.0.0:0", "--store", db}, "listens beyond this machine"},
		{[]string{"serve", "--http-addr", ":0", "--addr", "127.0.0.1:0", "--store", db}, "--http-addr :0 listens beyond this machine"},
		{[]string{"serve", "--max-streams", "0", "--store", db}, "--max-streams 0: out of range"},
	} {
		code, _, stderr := exitOf(t, "", tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 64 and %q", tc.args, code, stderr, tc.want)
		}
	}
}

// TestServeExposure: without tokens, serve listens beyond loopback only when told so by name,
// --insecure-no-auth, and warns that every call is open.
func TestServeExposure(t *testing.T) {
	s := exec.Command(buildPlumb(t), "serve", "--addr", "0.0.0.0:0", "--insecure-no-auth", "--store", filepath.Join(t.TempDir(), "plumb.db"))
	var log syncBuffer
	s.Stderr = &log
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	waitAddr(t, &log)
	s.Process.Signal(syscall.SIGTERM)
	if err := s.Wait(); err != nil {
		t.Fatalf("serve --insecure-no-auth: %v\n%s", err, log.String())
	}
	if !strings.Contains(log.String(), "every call is open") {
		t.Errorf("no warning that every call is open:\n%s", log.String())
	}
}

// TestDefaultStore: without --store or $PLUMB_STORE, the commands share one store in the user's
// data directory ($XDG_DATA_HOME/plumb, else ~/.local/share/plumb), made on first use, and
// leave no file in the directory they run in.
func TestDefaultStore(t *testing.T) {
	home, cwd := t.TempDir(), t.TempDir()
	run := func(args ...string) {
		cmd := exec.Command(buildPlumb(t), args...)
		cmd.Dir = cwd
		cmd.Env = append(os.Environ(), "HOME="+home, "XDG_DATA_HOME=", "PLUMB_STORE=")
		cmd.Stdin = strings.NewReader(`{"paraphrases":[{"options":[{"label":"A","logprob":-0.2},{"label":"B","logprob":-1.7}]}]}` + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	run("score")
	run("profiles", "list")
	if _, err := os.Stat(filepath.Join(home, ".local", "share", "plumb", "plumb.db")); err != nil {
		t.Errorf("no store in the data directory: %v", err)
	}
	if entries, _ := os.ReadDir(cwd); len(entries) != 0 {
		t.Errorf("the working directory holds %v", entries)
	}
}

// TestVersion: `plumb version` names the VCS revision the binary was built from.
func TestVersion(t *testing.T) {
	code, out, _ := exitOf(t, "", "version")
	if code != 0 || !strings.HasPrefix(out, "plumb ") || !strings.Contains(out, " go1.") {
		t.Fatalf("exit %d: %q", code, out)
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Logf("no git here (%v): the revision is not compared", err)
		return
	}
	if want := "revision " + strings.TrimSpace(string(head)); !strings.Contains(out, want) {
		t.Fatalf("%q does not name %s", out, want)
	}
}

// TestKeepGoingExitStatus: a command that went past bad lines under --keep-going exits 2.
func TestKeepGoingExitStatus(t *testing.T) {
	good := `{"paraphrases":[{"options":[{"label":"A","logprob":-0.2},{"label":"B","logprob":-1.7}]}]}`
	db := filepath.Join(t.TempDir(), "plumb.db")
	if code, out, _ := exitOf(t, good+"\n{bad\n", "score", "--keep-going", "--store", db); code != exitSkipped || strings.Count(out, "\n") != 2 {
		t.Fatalf("exit %d, %q", code, out)
	}
	if code, _, _ := exitOf(t, good+"\n", "score", "--keep-going", "--store", db); code != 0 {
		t.Fatalf("nothing skipped: exit %d", code)
	}
}

// TestInterrupt: Ctrl-C (SIGINT) during a long fit's temperature stage stops it, writing
// nothing, with exit status 130 and a message saying so; it stops a server the same way;
// SIGTERM stops a server with status 0. (How soon it stops is not asserted: a shared CI machine
// can take any time; the fit checks its context between stages and inside them.)
func TestInterrupt(t *testing.T) {
	bin := buildPlumb(t)
	dir := t.TempDir()
	big := filepath.Join(dir, "big.jsonl")
	f, _ := os.Create(big)
	sim := exec.Command(bin, "simulate", "--labeled", "--questions", "60000", "--seed", "3")
	sim.Stdout = f
	if err := sim.Run(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	db := filepath.Join(dir, "plumb.db")
	fit := exec.Command(bin, "fit", "--data", big, "--store", db, "--progress")
	var stderr syncBuffer
	fit.Stderr = &stderr
	if err := fit.Start(); err != nil {
		t.Fatal(err)
	}
	// Interrupt while it fits, when its --progress says so: a fixed sleep lands after the fit on
	// a fast machine.
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(stderr.String(), "plumb fit: temperature"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("plumb fit never reached its temperature stage:\n%s", stderr.String())
		}
	}
	fit.Process.Signal(os.Interrupt)
	err := fit.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
		t.Fatalf("fit after Ctrl-C: %v, want exit status 130\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "plumb fit: interrupted; nothing was stored") || strings.Contains(stderr.String(), "context canceled") {
		t.Errorf("fit after Ctrl-C says:\n%s\nwant \"plumb fit: interrupted; nothing was stored\" and no context error", stderr.String())
	}
	if code, out, _ := exitOf(t, "", "profiles", "list", "--store", db); code != 0 || strings.Count(out, "\n") != 1 {
		t.Errorf("an interrupted fit stored something:\n%s", out)
	}
	for sig, want := range map[syscall.Signal]int{syscall.SIGINT: exitInterrupted, syscall.SIGTERM: 0} {
		s := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--store", filepath.Join(t.TempDir(), "plumb.db"))
		var log syncBuffer
		s.Stderr = &log
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		waitAddr(t, &log)
		s.Process.Signal(sig)
		err := s.Wait()
		code := 0
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		if code != want {
			t.Errorf("serve after %v: exit %d, want %d\n%s", sig, code, want, log.String())
		}
	}
}

// TestOpenAIHint: an OpenAI-shaped file read without --from openai says to add it.
func TestOpenAIHint(t *testing.T) {
	_, _, err := plumb(t, "", "score", "../../testdata/openai-example.jsonl", "--store", filepath.Join(t.TempDir(), "plumb.db"))
	if err == nil || !strings.Contains(err.Error(), "add --from openai") {
		t.Fatalf("%v, want a hint to add --from openai", err)
	}
}

// TestNotFoundListsProfiles: an unknown profile's error lists the profiles there are; an
// unknown version, the versions of its profile.
func TestNotFoundListsProfiles(t *testing.T) {
	db := filepath.Join(t.TempDir(), "plumb.db")
	good := `{"paraphrases":[{"options":[{"label":"A","logprob":-0.2},{"label":"B","logprob":-1.7}]}]}`
	if _, _, err := plumb(t, good+"\n", "score", "--profile", "nope", "--store", db); err == nil || !strings.Contains(err.Error(), "no profile is stored yet") {
		t.Fatalf("an empty store: %v", err)
	}
	data := subjectFile(t, "anatomy")
	for _, name := range []string{"anat", "bio"} {
		if _, _, err := plumb(t, "", "fit", "--data", data, "--profile", name, "--store", db, "--activate"); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := plumb(t, good+"\n", "score", "--profile", "nope", "--store", db); err == nil || !strings.Contains(err.Error(), "stored profiles: anat, bio") {
		t.Fatalf("an unknown profile: %v", err)
	}
	if _, _, err := plumb(t, "", "profiles", "get", "anat@7", "--store", db); err == nil || !strings.Contains(err.Error(), "anat has versions 1") {
		t.Fatalf("an unknown version: %v", err)
	}
}

// writeCert makes a certificate signed by parent (self-signed when parent is nil) and writes it
// and its key as PEM files; it returns them and the parsed certificate and key.
func writeCert(t *testing.T, dir, name string, tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (certFile, keyFile string, cert *x509.Certificate, key *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile, cert, key
}

// TestTLSClient: `--server` reaches a TLS server with --tls-ca (and --tls-server-name), with
// --tls and the system's roots (here SSL_CERT_FILE), and one that asks for client
// certificates with --tls-cert/--tls-key; plaintext to it fails.
func TestTLSClient(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	caFile, _, ca, caKey := writeCert(t, dir, "ca", &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "plumb test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}, nil, nil)
	srvCert, srvKey, _, _ := writeCert(t, dir, "server", &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "plumb.test"},
		DNSNames: []string{"plumb.test"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, ca, caKey)
	cliCert, cliKey, _, _ := writeCert(t, dir, "client", &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "client"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, ca, caKey)

	list := func(env []string, args ...string) (int, string) {
		cmd := exec.Command(buildPlumb(t), append([]string{"profiles", "list"}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		}
		return 0, string(out)
	}
	s := serveArgs(t, "--store", filepath.Join(dir, "plumb.db"), "--tls-cert", srvCert, "--tls-key", srvKey)
	for name, args := range map[string][]string{
		"--tls-ca":                   {"--server", s.addr, "--tls-ca", caFile},
		"--tls-ca --tls-server-name": {"--server", s.addr, "--tls-ca", caFile, "--tls-server-name", "plumb.test"},
	} {
		if code, out := list(nil, args...); code != 0 || !strings.Contains(out, "NAME") {
			t.Errorf("%s: exit %d\n%s", name, code, out)
		}
	}
	if code, out := list([]string{"SSL_CERT_FILE=" + caFile}, "--server", s.addr, "--tls"); code != 0 {
		t.Errorf("--tls with the system roots: exit %d\n%s", code, out)
	}
	if code, _ := list(nil, "--server", s.addr); code == 0 {
		t.Error("plaintext to a TLS server succeeded")
	}
	if code, _ := list(nil, "--server", s.addr, "--tls-ca", caFile, "--tls-server-name", "other.test"); code == 0 {
		t.Error("a certificate for another name was accepted")
	}
	m := serveArgs(t, "--store", filepath.Join(dir, "m.db"), "--tls-cert", srvCert, "--tls-key", srvKey, "--client-ca", caFile)
	if code, out := list(nil, "--server", m.addr, "--tls-ca", caFile, "--tls-cert", cliCert, "--tls-key", cliKey); code != 0 {
		t.Errorf("mutual TLS: exit %d\n%s", code, out)
	}
	if code, _ := list(nil, "--server", m.addr, "--tls-ca", caFile); code == 0 {
		t.Error("a server that asks for client certificates took a client without one")
	}
}

// TestTokenWarning: a token for a server that is not this machine, without TLS, draws a
// warning (the client dials lazily, so nothing is sent here).
func TestTokenWarning(t *testing.T) {
	for server, warn := range map[string]bool{"192.0.2.10:50051": true, "127.0.0.1:50051": false, "localhost:1,[::1]:2": false, "a.example:1,127.0.0.1:2": true} {
		var stderr bytes.Buffer
		tg := target{server: server, token: "t0ken"}
		b, err := tg.open(stdio{err: &stderr})
		if err != nil {
			t.Fatal(err)
		}
		b.Close()
		if got := strings.Contains(stderr.String(), "in plaintext"); got != warn {
			t.Errorf("%s: warning %v, want %v (%q)", server, got, warn, stderr.String())
		}
	}
	var stderr bytes.Buffer
	tg := target{server: "192.0.2.10:50051", token: "t0ken", tls: true}
	b, _ := tg.open(stdio{err: &stderr})
	b.Close()
	if stderr.Len() != 0 {
		t.Errorf("a warning with --tls: %q", stderr.String())
	}
	_ = context.Background
}
