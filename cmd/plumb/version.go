package main

import (
	"context"
	"fmt"
	"runtime/debug"
)

// cmdVersion prints the module version, the VCS revision and time, and the Go version, from
// the build information the Go toolchain stamps into the binary.
func cmdVersion(_ context.Context, args []string, std stdio) error {
	fs := newFlags("version", std)
	if _, err := fs.parse(args); err != nil {
		return err
	}
	fmt.Fprintln(std.out, versionString())
	return nil
}

func versionString() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "plumb (no build information)"
	}
	version := bi.Main.Version
	if version == "" {
		version = "(devel)"
	}
	s := "plumb " + version
	var rev, when, modified string
	for _, kv := range bi.Settings {
		switch kv.Key {
		case "vcs.revision":
			rev = kv.Value
		case "vcs.time":
			when = kv.Value
		case "vcs.modified":
			if kv.Value == "true" {
				modified = ", modified"
			}
		}
	}
	if rev != "" {
		s += fmt.Sprintf(" (revision %s, %s%s)", rev, when, modified)
	}
	return s + " " + bi.GoVersion
}
