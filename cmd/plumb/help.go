package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// usage is `plumb help`.
func usage(w io.Writer) {
	fmt.Fprint(w, "plumb: how far to trust an LLM's answer.\n\nUsage:\n  plumb COMMAND [ARGS]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
--server takes host:port, several host:port separated by commas, or a gRPC target such as
dns:///plumb.default.svc:50051; calls are spread over the healthy servers. --store takes a
bbolt file or a postgres:// URL. Files are JSON Lines in protojson.

Exit status: 0 done; 1 failed; 2 done, but --keep-going skipped bad lines; 64 bad usage;
130 interrupted (Ctrl-C).

Run "plumb help COMMAND" or "plumb COMMAND --help" for a command's flags.
`)
}

// cmdHelp prints plumb's usage, or one command's help, on stdout.
func cmdHelp(_ context.Context, args []string, std stdio) error {
	if len(args) == 0 {
		usage(std.out)
		return errHelp
	}
	c := lookup(args[0])
	if c == nil || c.name == "help" {
		fmt.Fprintf(std.err, "plumb help: unknown command %q\n\n", args[0])
		usage(std.err)
		return errUsage
	}
	// A command prints its help when asked for it: run it with --help alone.
	return c.run(context.Background(), []string{"--help"}, std)
}

// flagSet is a command's flags: --help prints the command's help on stdout (exit 0); a bad flag
// is reported on stderr with a pointer to --help (exit 64).
type flagSet struct {
	*flag.FlagSet
	command string
	std     stdio
}

func newFlags(command string, std stdio) *flagSet {
	fs := flag.NewFlagSet("plumb "+command, flag.ContinueOnError)
	fs.SetOutput(std.err)
	fs.Usage = func() {}
	return &flagSet{FlagSet: fs, command: command, std: std}
}

// parse parses args, allowing flags after positional arguments; it returns the positionals.
func (fs *flagSet) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.help(fs.std.out)
				return nil, errHelp
			}
			fmt.Fprintf(fs.Output(), "Run '%s --help' for its flags.\n", fs.Name())
			return nil, errUsage
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// given reports whether flag name was given on the command line (not left at its default).
func (fs *flagSet) given(name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}

// help prints the command's description, usage and flags.
func (fs *flagSet) help(w io.Writer) {
	c := lookup(fs.command)
	if c == nil {
		return
	}
	fmt.Fprintf(w, "plumb %s: %s.\n\nUsage:\n  plumb %s %s\n", c.name, c.summary, c.name, c.args)
	if c.about != "" {
		fmt.Fprintf(w, "\n%s\n", c.about)
	}
	var flags strings.Builder
	fs.SetOutput(&flags)
	fs.PrintDefaults()
	fs.SetOutput(fs.std.err)
	if flags.Len() > 0 {
		fmt.Fprintf(w, "\nFlags:\n%s", flags.String())
	}
}

// didYouMean returns ` (did you mean "x"?)` naming the candidate nearest to word by edit
// distance, when one is within two edits (a typo), else "".
func didYouMean(word string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := editDistance(word, c); d < bestD || d == bestD && c < best {
			best, bestD = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance of a and b, with a swap of two neighbours counted as
// one edit (the optimal string alignment distance): "scroe" is one edit from "score".
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
