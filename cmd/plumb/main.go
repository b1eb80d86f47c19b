// Command plumb is plumb's one binary: the server (serve: gRPC, and HTTP with --http-addr),
// the JSONL tools that score, fit and evaluate (in-process on a store, or through a server with
// --server), profile management, and a self-contained demo. Run `plumb help` for the commands.
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

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// command is one of plumb's commands: its name, the usage line after "plumb NAME", a
// description for `plumb help NAME`, and what runs it.
type command struct {
	name, args, summary, about string
	run                        func(ctx context.Context, args []string, std stdio) error
}

// commands returns plumb's commands in the order `plumb help` lists them (a function: the
// help command's own entry refers back to the table).
func commands() []command {
	return []command{
		{"demo", "[flags]", "run the whole job on simulated evidence, through a real server",
			"Starts a server on a free port over a throw-away store, fits a profile through the gRPC API on\n" +
				"simulated evidence with known truth, scores held-out questions, prints a table (answer,\n" +
				"confidence, set, action, reasons, badge) and writes a report with a reliability diagram.", cmdDemo},
		{"serve", "[flags]", "serve the gRPC API (and HTTP, the badge and a demo page with --http-addr)",
			"Serves ConfidenceService and ProfileService over gRPC, with health and reflection; with\n" +
				"--http-addr also over HTTP (Connect JSON or binary, gRPC-Web), with /badge.js, a demo page,\n" +
				"/healthz and /readyz. SIGTERM or Ctrl-C: health NOT_SERVING, drain calls, stop.", cmdServe},
		{"score", "[flags] [FILE|-]", "score ScoreRequest lines into ScoreResponse lines",
			"Reads ScoreRequest lines (JSON Lines of protojson; --from openai reads chat-completions\n" +
				"responses) and writes one ScoreResponse line per request, in order.", cmdScore},
		{"fit", "--data FILE [flags]", "fit and store a profile version on labelled examples",
			"Fits a profile (temperature, confidence map, conformal quantiles, abstention threshold) on\n" +
				"LabeledExample lines, stores it as the next version of its name, and reports before and after\n" +
				"on a held-out split.", cmdFit},
		{"eval", "--data FILE [flags]", "report a profile on labelled examples; writes nothing",
			"Scores LabeledExample lines under a profile and under the uncalibrated default, and reports\n" +
				"calibration, coverage, selective risk and the actions, before and after.", cmdEval},
		{"profiles", "list|get|export|import|activate|delete ... [flags]", "manage stored profile versions",
			"  list [NAME]                           every version (of NAME)\n" +
				"  get NAME[@VERSION]                    one version as protojson (the active one without VERSION)\n" +
				"  export NAME[@VERSION] [--json] > F    one version as a file: binary protobuf, or protojson\n" +
				"  import FILE [--name N] [--activate]   store an exported profile as the next version of its name\n" +
				"  activate NAME VERSION                 make a version the active one (also a rollback)\n" +
				"  delete NAME [VERSION]                 delete a version, or every version of NAME", cmdProfiles},
		{"feedback", "[flags] FILE|-", "send outcomes back by their Score receipts",
			"Reads FeedbackRequest lines (a Score response's receipt, the acceptable answers, the answer\n" +
				"the product served, the source) and stores them, 10 000 a batch, all or none; a receipt\n" +
				"stored before counts once. Needs a server started with --receipt-key-file (or, in-process,\n" +
				"the same key with --receipt-key-file).", cmdFeedback},
		{"monitor", "[--profile P] [--window N] [--json] [flags]", "watch each profile's promises on the outcomes fed back",
			"Per profile version × segment over the last N outcomes: ECE, coverage against 1 − α, answer\n" +
				"rate, the selective risk with an anytime-valid confidence sequence against ε, the sycophancy\n" +
				"flag rate and how often the product served the user's stance; and the alarms that fire.", cmdMonitor},
		{"simulate", "[flags]", "write simulated ScoreRequest or LabeledExample lines with known truth",
			"Writes seeded synthetic evidence: questions with a gold answer and a difficulty, wording noise,\n" +
				"ambiguous questions, user-stance wordings, options or samples with token logprobs.", cmdSimulate},
		{"version", "", "print plumb's version and build",
			"Prints the module version, the VCS revision and time it was built from, and the Go version.", cmdVersion},
		{"help", "[COMMAND]", "describe plumb, or one command", "", cmdHelp},
	}
}

func lookup(name string) *command {
	for _, c := range commands() {
		if c.name == name {
			return &c
		}
	}
	return nil
}

// Exit statuses.
const (
	exitFailed      = 1
	exitSkipped     = 2  // done, but --keep-going skipped lines
	exitInactive    = 3  // a fit stored its profile inactive: it answers nothing
	exitUsage       = 64 // EX_USAGE of sysexits.h
	exitInterrupted = 130
)

// errUsage is returned after a usage message has been printed; errHelp after help was asked for
// and printed.
var (
	errUsage = errors.New("usage")
	errHelp  = errors.New("help")
)

// usageError is an error of the command line — a flag's value, a missing or extra argument —
// whose message is printed: exit status 64, as errUsage.
func usageError(format string, args ...any) error {
	return &badUsage{fmt.Sprintf(format, args...)}
}

type badUsage struct{ msg string }

func (e *badUsage) Error() string { return e.msg }

func (e *badUsage) Is(target error) bool { return target == errUsage }

// errSkipped is returned by a command that finished but skipped lines under --keep-going.
type errSkipped struct{ lines int }

func (e errSkipped) Error() string {
	return fmt.Sprintf("--keep-going skipped %d bad line(s), each named above", e.lines)
}

// errInactive is a fit's: its version was stored inactive, since it answers nothing.
type errInactive struct{ msg string }

func (e errInactive) Error() string { return e.msg }

func main() {
	// The first SIGINT or SIGTERM cancels the command's context: it stops promptly (a server
	// drains its calls first). A second one kills the process.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	var got os.Signal
	go func() {
		got = <-sigs
		cancel()
		<-sigs
		os.Exit(exitInterrupted)
	}()
	// PLUMB_CPUPROFILE=FILE writes a CPU profile of the command, for `go tool pprof`.
	if path := os.Getenv("PLUMB_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "plumb:", err)
			os.Exit(exitFailed)
		}
		pprof.StartCPUProfile(f)
	}
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	pprof.StopCPUProfile()
	// got is read only after ctx.Err() reports the cancel that follows its write.
	signalled := ctx.Err() != nil
	name := ""
	if len(os.Args) > 1 {
		name = os.Args[1]
	}
	os.Exit(exitCode(err, name, signalled, signalled && got == os.Interrupt))
}

// exitCode returns the exit status of command name that returned err: 130 after Ctrl-C, saying
// so (a fit adds that nothing was stored: it writes all or nothing); for a server stopped by
// SIGTERM, 0 (the orderly stop an orchestrator asks for).
func exitCode(err error, name string, signalled, interrupt bool) int {
	switch {
	case signalled && (interrupt || name != "serve"):
		if err != nil && !errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "plumb:", err)
		}
		what := "interrupted"
		if name == "fit" && err != nil {
			what += "; nothing was stored"
		}
		fmt.Fprintf(os.Stderr, "plumb %s: %s\n", name, what)
		return exitInterrupted
	case err == nil || errors.Is(err, errHelp):
		return 0
	case errors.Is(err, errUsage):
		if err != errUsage { // its usage was printed already
			fmt.Fprintln(os.Stderr, "plumb:", err)
		}
		return exitUsage
	}
	var skipped errSkipped
	if errors.As(err, &skipped) {
		fmt.Fprintln(os.Stderr, "plumb:", err)
		return exitSkipped
	}
	var inactive errInactive
	if errors.As(err, &inactive) {
		fmt.Fprintln(os.Stderr, "plumb:", err)
		return exitInactive
	}
	fmt.Fprintln(os.Stderr, "plumb:", err)
	if hint := authHint(err); hint != "" {
		fmt.Fprintln(os.Stderr, "plumb:", hint)
	}
	return exitFailed
}

// authHint says what to do when a server refuses the caller's token (or its absence): the flag
// and variable that carry it.
func authHint(err error) string {
	if status.Code(err) != codes.Unauthenticated {
		return ""
	}
	return "give a token from the server's tokens file with --token TOKEN or $PLUMB_TOKEN"
}

// run dispatches one command; it is main without the process around it, for tests.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	std := stdio{in: stdin, out: stdout, err: stderr}
	if len(args) == 0 {
		usage(stderr)
		return errUsage
	}
	switch args[0] {
	case "-h", "-help", "--help":
		usage(stdout)
		return errHelp
	case "-v", "-version", "--version":
		return cmdVersion(ctx, nil, std)
	}
	c := lookup(args[0])
	if c == nil {
		var names []string
		for _, c := range commands() {
			names = append(names, c.name)
		}
		fmt.Fprintf(stderr, "plumb: unknown command %q%s\n\n", args[0], didYouMean(args[0], names))
		usage(stderr)
		return errUsage
	}
	return c.run(ctx, args[1:], std)
}

// stdio are a command's streams.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
