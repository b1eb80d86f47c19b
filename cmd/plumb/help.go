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
