package main

import (
	"context"
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

// plumb profiles: list, get, export, import, activate and delete stored profile versions.

// profilesCall is one run of a profiles subcommand: its positional arguments after the
// subcommand, the profile calls of its backend, and the shared flags.
type profilesCall struct {
	args       []string
	calls      profileAPI
	std        stdio
	jsonOut    bool
	importName string
	activate   bool
}

// profileSubcommands are the subcommands of plumb profiles and what runs each.
var profileSubcommands = map[string]func(ctx context.Context, c *profilesCall) error{
	"list": profilesList, "get": profilesGet, "export": profilesExport, "import": profilesImport,
	"activate": profilesActivate, "delete": profilesDelete,
}

const profilesUsage = "list [NAME], get NAME[@VERSION], export NAME[@VERSION], import FILE, activate NAME VERSION or delete NAME [VERSION]"

func cmdProfiles(ctx context.Context, args []string, std stdio) error {
	fs := newFlags("profiles", std)
	var t target
	t.register(fs)
	c := &profilesCall{std: std}
	fs.BoolVar(&c.jsonOut, "json", false, "print protojson (export: write the profile as protojson instead of binary protobuf)")
	fs.StringVar(&c.importName, "name", "", "import: store the profile under this name instead of its own")
	fs.BoolVar(&c.activate, "activate", false, "import: make the imported version active (a name's first version always is)")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageError("plumb profiles: %s", profilesUsage)
	}
	run, ok := profileSubcommands[pos[0]]
	if !ok {
		names := make([]string, 0, len(profileSubcommands))
		for n := range profileSubcommands {
			names = append(names, n)
		}
		return usageError("plumb profiles: unknown subcommand %q%s; want %s", pos[0], didYouMean(pos[0], names), profilesUsage)
	}
	c.args = pos[1:]
	b, err := t.open(std)
	if err != nil {
		return err
	}
	defer b.Close()
	c.calls = b.profiles()
	return run(ctx, c)
}

func profilesList(ctx context.Context, c *profilesCall) error {
	if len(c.args) > 1 {
		return usageError("plumb profiles list [NAME]: one name at most")
	}
	name := ""
	if len(c.args) > 0 {
		name = c.args[0]
	}
	// Every page, merged: the listing a user asked for is all of it.
	resp := &plumbv1.ListProfilesResponse{}
	for token := ""; ; {
		page, err := c.calls.ListProfiles(ctx, &plumbv1.ListProfilesRequest{Name: name, PageSize: service.MaxPageSize, PageToken: token})
		if err != nil {
			return api.Described(err)
		}
		resp.Profiles = append(resp.Profiles, page.GetProfiles()...)
		if token = page.GetNextPageToken(); token == "" {
			break
		}
	}
	if c.jsonOut {
		return printJSON(c.std, resp)
	}
	tw := tabwriter.NewWriter(c.std.out, 0, 4, 2, ' ', 0)
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
}

func profilesGet(ctx context.Context, c *profilesCall) error {
	name, v, err := profileArg("get", c.args)
	if err != nil {
		return err
	}
	resp, err := c.calls.GetProfile(ctx, &plumbv1.GetProfileRequest{Name: name, Version: v})
	if err != nil {
		return api.Described(err)
	}
	return printJSON(c.std, resp.GetProfile())
}

func profilesExport(ctx context.Context, c *profilesCall) error {
	name, v, err := profileArg("export", c.args)
	if err != nil {
		return err
	}
	resp, err := c.calls.GetProfile(ctx, &plumbv1.GetProfileRequest{Name: name, Version: v})
	if err != nil {
		return api.Described(err)
	}
	if !resp.GetProfile().GetCalibrated() {
		return fmt.Errorf("export: %s is the built-in default, not a stored profile", name)
	}
	if c.jsonOut {
		return printJSON(c.std, resp.GetProfile())
	}
	if f, ok := c.std.out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return fmt.Errorf("export: the profile is binary protobuf: redirect it to a file (> %s.binpb), or give --json", name)
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(resp.GetProfile())
	if err != nil {
		return err
	}
	_, err = c.std.out.Write(b)
	return err
}

func profilesImport(ctx context.Context, c *profilesCall) error {
	if len(c.args) != 1 {
		return usageError("plumb profiles import FILE [--name NAME] [--activate]: one file is required")
	}
	file := c.args[0]
	b, err := service.ReadProfileFile(file)
	if err != nil {
		return err
	}
	m, err := service.DecodeProfileFile(b)
	if err != nil {
		return fmt.Errorf("%s: %w", file, api.Described(err))
	}
	resp, err := c.calls.ImportProfile(ctx, &plumbv1.ImportProfileRequest{Profile: m, Name: c.importName, Activate: c.activate})
	if err != nil {
		return api.Described(err)
	}
	if c.jsonOut {
		return printJSON(c.std, resp)
	}
	p := resp.GetProfile()
	fmt.Fprintf(c.std.out, "imported %s as profile %s version %d (active: %v)\n", file, p.GetName(), p.GetVersion(), p.GetActive())
	return nil
}

func profilesActivate(ctx context.Context, c *profilesCall) error {
	name, v, err := profileArg("activate", c.args)
	if err != nil {
		return err
	}
	if v == 0 {
		return usageError("plumb profiles activate NAME VERSION: a version is required (plumb profiles list %s shows them)", name)
	}
	resp, err := c.calls.ActivateProfile(ctx, &plumbv1.ActivateProfileRequest{Name: name, Version: v})
	if err != nil {
		return api.Described(err)
	}
	if c.jsonOut {
		return printJSON(c.std, resp)
	}
	fmt.Fprintf(c.std.out, "profile %s version %d is active\n", name, resp.GetProfile().GetVersion())
	return nil
}

func profilesDelete(ctx context.Context, c *profilesCall) error {
	name, v, err := profileArg("delete", c.args)
	if err != nil {
		return err
	}
	resp, err := c.calls.DeleteProfile(ctx, &plumbv1.DeleteProfileRequest{Name: name, Version: v})
	if err != nil {
		return api.Described(err)
	}
	if c.jsonOut {
		return printJSON(c.std, resp)
	}
	fmt.Fprintf(c.std.out, "deleted %d version(s) of %s\n", resp.GetDeleted(), name)
	return nil
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
