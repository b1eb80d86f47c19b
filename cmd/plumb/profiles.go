package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/plumbhq/plumb/api"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/service"
	"golang.org/x/term"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

func cmdProfiles(ctx context.Context, args []string, std stdio) error {
	fs := newFlags("profiles", std)
	var t target
	t.register(fs)
	jsonOut := fs.Bool("json", false, "print protojson (export: write the profile as protojson instead of binary protobuf)")
	importName := fs.String("name", "", "import: store the profile under this name instead of its own")
	activate := fs.Bool("activate", false, "import: make the imported version active (a name's first version always is)")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		fmt.Fprintln(std.err, "plumb profiles: list, get NAME[@VERSION], export NAME[@VERSION], import FILE, activate NAME VERSION or delete NAME [VERSION]")
		return errUsage
	}
	b, err := t.open(std)
	if err != nil {
		return err
	}
	defer b.Close()
	profiles := b.profiles()
	switch pos[0] {
	case "list":
		name := ""
		if len(pos) > 1 {
			name = pos[1]
		}
		resp, err := profiles.ListProfiles(ctx, &plumbv1.ListProfilesRequest{Name: name})
		if err != nil {
			return errors.New(api.Describe(err))
		}
		if *jsonOut {
			return printJSON(std, resp)
		}
		tw := tabwriter.NewWriter(std.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tVERSION\tACTIVE\tCREATED\tEVIDENCE\tTEMPERATURE\tALPHA\tLAMBDA")
		for _, p := range resp.GetProfiles() {
			created := ""
			if p.GetCreateTime() != nil {
				created = p.GetCreateTime().AsTime().Format(time.RFC3339)
			}
			active := ""
			if p.GetActive() {
				active = "*"
			}
			if p.GetError() != "" {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", p.GetName(), p.GetVersion(), active, "DAMAGED: "+p.GetError())
				continue
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%.2f\t%.2f\n", p.GetName(), p.GetVersion(), active, created,
				strings.ToLower(strings.TrimPrefix(p.GetEvidence().String(), "EVIDENCE_")),
				strings.ToLower(strings.TrimPrefix(p.GetTemperatureMethod().String(), "TEMPERATURE_METHOD_")),
				p.GetAlpha(), p.GetLambda())
		}
		return tw.Flush()
	case "get", "export":
		name, v, err := profileArg(pos[1:])
		if err != nil {
			return err
		}
		resp, err := profiles.GetProfile(ctx, &plumbv1.GetProfileRequest{Name: name, Version: v})
		if err != nil {
			return errors.New(api.Describe(err))
		}
		if pos[0] == "get" {
			return printJSON(std, resp.GetProfile())
		}
		if !resp.GetProfile().GetCalibrated() {
			return fmt.Errorf("export: %s is the built-in default, not a stored profile", name)
		}
		if *jsonOut {
			return printJSON(std, resp.GetProfile())
		}
		if f, ok := std.out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			return fmt.Errorf("export: the profile is binary protobuf: redirect it to a file (> %s.binpb), or give --json", name)
		}
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(resp.GetProfile())
		if err != nil {
			return err
		}
		_, err = std.out.Write(b)
		return err
	case "import":
		if len(pos) != 2 {
			return fmt.Errorf("import: one file is required (plumb profiles import FILE [--name NAME] [--activate])")
		}
		b, err := os.ReadFile(pos[1])
		if err != nil {
			return err
		}
		m, err := service.DecodeProfileFile(b)
		if err != nil {
			return fmt.Errorf("%s: %s", pos[1], api.Describe(err))
		}
		resp, err := profiles.ImportProfile(ctx, &plumbv1.ImportProfileRequest{Profile: m, Name: *importName, Activate: *activate})
		if err != nil {
			return errors.New(api.Describe(err))
		}
		if *jsonOut {
			return printJSON(std, resp)
		}
		p := resp.GetProfile()
		fmt.Fprintf(std.out, "imported %s as profile %s version %d (active: %v)\n", pos[1], p.GetName(), p.GetVersion(), p.GetActive())
		return nil
	case "activate":
		name, v, err := profileArg(pos[1:])
		if err != nil {
			return err
		}
		if v == 0 {
			return fmt.Errorf("activate: a version is required")
		}
		resp, err := profiles.ActivateProfile(ctx, &plumbv1.ActivateProfileRequest{Name: name, Version: v})
		if err != nil {
			return errors.New(api.Describe(err))
		}
		if *jsonOut {
			return printJSON(std, resp)
		}
		fmt.Fprintf(std.out, "profile %s version %d is active\n", name, resp.GetProfile().GetVersion())
		return nil
	case "delete":
		name, v, err := profileArg(pos[1:])
		if err != nil {
			return err
		}
		resp, err := profiles.DeleteProfile(ctx, &plumbv1.DeleteProfileRequest{Name: name, Version: v})
		if err != nil {
			return errors.New(api.Describe(err))
		}
		if *jsonOut {
			return printJSON(std, resp)
		}
		fmt.Fprintf(std.out, "deleted %d version(s) of %s\n", resp.GetDeleted(), name)
		return nil
	}
	return fmt.Errorf("profiles: unknown subcommand %q (list, get, export, import, activate, delete)", pos[0])
}

// indented writes every field, zeros included (a q̂ or λ of 0 is a value, not an absence);
// only an undefined metric, which has no value, is left out.
var indented = protojson.MarshalOptions{Multiline: true, Indent: "  ", EmitUnpopulated: true}

// printJSON prints m as indented protojson.
func printJSON(std stdio, m proto.Message) error {
	b, err := indented.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(std.out, string(b))
	return err
}
