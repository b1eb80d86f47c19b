package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/plumbhq/plumb/api"
	"github.com/plumbhq/plumb/calibrate"
	"github.com/plumbhq/plumb/client"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/server"
	"github.com/plumbhq/plumb/service"
	"github.com/plumbhq/plumb/simulate"
	"github.com/plumbhq/plumb/store"
	"google.golang.org/protobuf/proto"
)

// cmdDemo runs plumb's main job end to end on its own: a server on a free port over a
// throw-away store, a profile fitted through the gRPC API on simulated evidence with known
// truth, held-out questions scored, a table printed and the report written.
func cmdDemo(ctx context.Context, args []string, std stdio) error {
	fs := newFlags("demo", std)
	reportDir := fs.String("report-dir", "plumb-demo", "where to write the report and reliability diagram")
	n := fs.Int("questions", 10000, "simulated questions to fit on (and as many to score)")
	seed := fs.Uint64("seed", 7, "simulator seed")
	if _, err := fs.parse(args); err != nil {
		return err
	}
	if err := checkReportDir(*reportDir); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "plumb-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, err := store.Open(filepath.Join(dir, "plumb.db"), 0)
	if err != nil {
		return err
	}
	defer st.Close()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("net.Listen: %w", err)
	}
	srv, err := server.New(service.New(st), server.Config{Logger: discardLogger()})
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go srv.Serve(sctx, lis)
	fmt.Fprintf(std.out, "plumb demo: server on %s, throw-away store in %s\n", lis.Addr(), dir)

	c, err := client.Dial(lis.Addr().String(), nil)
	if err != nil {
		return err
	}
	defer c.Close()

	// Simulated LLM evidence: 10 neutral wordings of 4 options, a model overconfident by
	// T* = 1.5; easy, medium, hopeless and ambiguous questions. One user in five states a
	// belief (2 USER_STANCE wordings pulling toward a wrong answer), as in a chat product where
	// most questions are asked plainly.
	exs, truths := simulate.Generate(&simulate.Config{Questions: 2 * *n, Seed: *seed, Stance: 2, StanceShare: 0.2})
	train, held := exs[:*n], exs[*n:]
	fmt.Fprintf(std.out, "fitting profile \"demo\" on %d simulated questions through ProfileService.Fit …\n", len(train))
	resp, err := c.Fit(ctx, &plumbv1.FitConfig{Name: "demo", Activate: proto.Bool(true), Seed: *seed}, func(yield func(*plumbv1.LabeledExample, error) bool) {
		for i := range train {
			if !yield(api.Labeled(&train[i]), nil) {
				return
			}
		}
	})
	if err != nil {
		return fmt.Errorf("fit: %s", api.Describe(err))
	}
	p := resp.GetProfile()
	fmt.Fprintf(std.out, "stored profile %s v%d: temperature %s, α = %.2f, q̂ = %.3f, λ = %.2f\n\n",
		p.GetName(), p.GetVersion(), strings.ToLower(strings.TrimPrefix(p.GetTemperatureMethod().String(), "TEMPERATURE_METHOD_")),
		p.GetAlpha(), p.GetQuantile(), p.GetLambda())

	// Score the held-out questions over one ScoreStream and show a few of each kind.
	actions, err := demoScores(ctx, c, held, truths[*n:], std)
	if err != nil {
		return err
	}
	fmt.Fprintf(std.out, "\nactions on %d held-out questions, by the simulator's truth:\n", len(held))
	tw := tabwriter.NewWriter(std.out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "class\tANSWER\tCLARIFY\tABSTAIN\t")
	for _, cl := range []simulate.Class{simulate.Easy, simulate.Medium, simulate.Ambiguous, simulate.Hopeless} {
		a := actions[cl]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t\n", cl, a[plumbv1.Action_ACTION_ANSWER], a[plumbv1.Action_ACTION_CLARIFY], a[plumbv1.Action_ACTION_ABSTAIN])
	}
	tw.Flush()
	fmt.Fprintln(std.out)
	summary(std.out, resp.GetReport())
	if err := writeReport(*reportDir, resp.GetReport()); err != nil {
		return err
	}
	fmt.Fprintf(std.out, "\nreport: %s (report.md, report.json, reliability.png, reliability.svg)\n", *reportDir)
	return nil
}

// demoScores scores the held-out questions under the demo profile over one ScoreStream, prints
// a table of the first three of each class, and returns the actions by class.
func demoScores(ctx context.Context, c *client.Client, held []calibrate.Example, truths []simulate.Truth, std stdio) (map[simulate.Class]map[plumbv1.Action]int, error) {
	reqs := func(yield func(*plumbv1.ScoreRequest) bool) {
		for i := range held {
			r := api.Request(&held[i].Question)
			r.Profile = "demo"
			if !yield(r) {
				return
			}
		}
	}
	shown := map[simulate.Class]int{}
	tw := tabwriter.NewWriter(std.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTRUTH\tANSWER\tCONFIDENCE\tSET\tACTION\tREASONS\tBADGE")
	actions := map[simulate.Class]map[plumbv1.Action]int{}
	i := 0
	for r, err := range c.ScoreAll(ctx, reqs) {
		if err != nil {
			return nil, fmt.Errorf("score: %s", api.Describe(err))
		}
		t := truths[i]
		i++
		if actions[t.Class] == nil {
			actions[t.Class] = map[plumbv1.Action]int{}
		}
		actions[t.Class][r.GetAction()]++
		if shown[t.Class] >= 3 {
			continue
		}
		shown[t.Class]++
		var reasons []string
		for _, x := range r.GetReasons() {
			reasons = append(reasons, strings.TrimPrefix(x.String(), "REASON_"))
		}
		fmt.Fprintf(tw, "%s\t%s (gold %s)\t%s\t%.3f\t{%s}\t%s\t%s\t%s\n", r.GetId(), t.Class, t.Gold, r.GetAnswer(), r.GetConfidence(),
			strings.Join(r.GetPredictionSet().GetAnswers(), ","), strings.TrimPrefix(r.GetAction().String(), "ACTION_"),
			orDash(strings.Join(reasons, ",")), r.GetBadge().GetLabel())
	}
	return actions, tw.Flush()
}
