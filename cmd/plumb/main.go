// Command plumb is plumb's one binary: the gRPC server (serve), the JSONL tools that score, fit
// and evaluate (in-process on a store file, or through a server with --server), profile
// management, and a self-contained demo. Run `plumb help` for the commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

const usage = `plumb: how far to trust an LLM's answer.

Usage:
  plumb demo     [--report-dir DIR] [--questions N]
  plumb serve    [--addr localhost:50051] [--store plumb.db | --store postgres://… | --profile-file F…]
                 [--metrics-addr ADDR] [--auth-tokens FILE] [--tls-cert FILE --tls-key FILE [--client-ca FILE]]
                 [--rate-limit N] [--max-connections N] [--max-streams N] [--send-timeout D]
                 [--max-stream-bytes N] [--pg-max-conns N] [--pg-connect-timeout D] [--pg-timeout D]
  plumb score    [--profile NAME] [--server ADDR | --store PATH] [FILE|-]
  plumb fit      --data FILE [--profile NAME] [--alpha A] [--temperature auto|global|adaptive|none]
                 [--confidence-map auto|platt|logistic|none] [--score lac|aps|raps] [--split 0.4,0.4,0.2]
                 [--seed S] [--risk E] [--min-group N] [--report-dir DIR] [--json] [--dry-run]
                 [--server ADDR | --store PATH]
  plumb eval     --data FILE [--profile NAME] [--json] [--report-dir DIR] [--server ADDR | --store PATH]
  plumb profiles list [NAME] | get NAME[@VERSION] | export NAME[@VERSION] [--json] |
                 import FILE [--name NAME] [--activate] | activate NAME VERSION | delete NAME [VERSION]
                 [--server ADDR | --store PATH]
  plumb simulate [--questions N] [--seed S] [--samples N] [--stance N] [--labeled]

--server takes host:port, several host:port separated by commas, or a gRPC target such as
dns:///plumb.default.svc:50051; calls are spread over the healthy servers. --store takes a
bbolt file or a postgres:// URL.

Run "plumb COMMAND --help" for a command's flags. Files are JSON Lines in protojson.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// PLUMB_CPUPROFILE=FILE writes a CPU profile of the command, for `go tool pprof`.
	if path := os.Getenv("PLUMB_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "plumb:", err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		pprof.StopCPUProfile()
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "plumb:", err)
		}
		os.Exit(1)
	}
}

// errUsage is returned after a usage message has been printed.
var errUsage = errors.New("usage")

// run dispatches one command; it is main without the process around it, for tests.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	io := ios{in: stdin, out: stdout, err: stderr}
	switch args[0] {
	case "serve":
		return cmdServe(ctx, args[1:], io)
	case "score":
		return cmdScore(ctx, args[1:], io)
	case "fit":
		return cmdFit(ctx, args[1:], io)
	case "eval":
		return cmdEval(ctx, args[1:], io)
	case "profiles":
		return cmdProfiles(ctx, args[1:], io)
	case "demo":
		return cmdDemo(ctx, args[1:], io)
	case "simulate":
		return cmdSimulate(ctx, args[1:], io)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "plumb: unknown command %q\n\n%s", args[0], usage)
	return errUsage
}

// ios are a command's streams.
type ios struct {
	in       io.Reader
	out, err io.Writer
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
