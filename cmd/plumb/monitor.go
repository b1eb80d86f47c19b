package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/plumbhq/plumb/api"
	"github.com/plumbhq/plumb/monitor"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/service"
)

// monitorAPI is MonitorService's calls: a batch of outcomes stored all or none, and the
// monitors.
type monitorAPI interface {
	Feedback(ctx context.Context, batch []*plumbv1.FeedbackRequest) (*plumbv1.FeedbackResponse, error)
	Monitor(ctx context.Context, r *plumbv1.GetMonitorRequest) (*plumbv1.GetMonitorResponse, error)
	Refit(ctx context.Context, r *plumbv1.RefitRequest) (*plumbv1.FitResponse, error)
}

func (l *local) monitor() monitorAPI { return l.svc }

func (r *remote) monitor() monitorAPI { return remoteMonitor{r.c.Monitor, r.c.Profiles} }

// remoteMonitor is MonitorService's client (and ProfileService's Refit) as a monitorAPI: a
// batch goes as one FeedbackStream.
type remoteMonitor struct {
	c plumbv1.MonitorServiceClient
	p plumbv1.ProfileServiceClient
}

func (m remoteMonitor) Refit(ctx context.Context, r *plumbv1.RefitRequest) (*plumbv1.FitResponse, error) {
	return m.p.Refit(ctx, r)
}

func (m remoteMonitor) Feedback(ctx context.Context, batch []*plumbv1.FeedbackRequest) (*plumbv1.FeedbackResponse, error) {
	stream, err := m.c.FeedbackStream(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range batch {
		if err := stream.Send(r); err != nil {
			break // the server ended the stream: CloseAndRecv says why
		}
	}
	return stream.CloseAndRecv()
}

func (m remoteMonitor) Monitor(ctx context.Context, r *plumbv1.GetMonitorRequest) (*plumbv1.GetMonitorResponse, error) {
	return m.c.GetMonitor(ctx, r)
}

// feedbackBatch is how many outcomes plumb feedback sends in one stream, all or none.
const feedbackBatch = 10_000

func cmdFeedback(ctx context.Context, args []string, std stdio) error {
	fs := newFlags("feedback", std)
	var t target
	t.register(fs)
	fs.StringVar(&t.receiptKey, "receipt-key-file", "", "in-process (no --server): the servers' receipt key, to check the receipts with")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("plumb feedback [flags] FILE: one file of FeedbackRequest lines (- for stdin)")
	}
	in := std.in
	name := pos[0]
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	} else {
		name = "stdin"
	}
	b, err := t.open(std)
	if err != nil {
		return err
	}
	defer b.Close()
	m := b.monitor()
	var accepted, duplicates int
	var batch []*plumbv1.FeedbackRequest
	first := 1 // the line of the batch's first outcome
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		resp, err := m.Feedback(ctx, batch)
		if err != nil {
			return fmt.Errorf("%s: the outcomes of lines %d–%d were not stored: %w", name, first, first+len(batch)-1, api.Described(err))
		}
		accepted += int(resp.GetAccepted())
		duplicates += int(resp.GetDuplicates())
		first += len(batch)
		batch = batch[:0]
		return nil
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			if len(batch) == 0 {
				first = line + 1
			}
			continue
		}
		r := new(plumbv1.FeedbackRequest)
		if err := api.Decode([]byte(text), api.JSON, r); err != nil {
			return fmt.Errorf("%s:%d: %w (nothing from line %d on was stored)", name, line, api.Described(err), first)
		}
		batch = append(batch, r)
		if len(batch) == feedbackBatch {
			if err := flush(); err != nil {
				return err
			}
			first = line + 1
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s:%d: %w", name, line+1, err)
	}
	if err := flush(); err != nil {
		return err
	}
	fmt.Fprintf(std.out, "%d outcomes stored, %d duplicates (stored before)\n", accepted, duplicates)
	return nil
}

func cmdMonitor(ctx context.Context, args []string, std stdio) error {
	fs := newFlags("monitor", std)
	var t target
	t.register(fs)
	var profile string
	var window int
	var jsonOut bool
	fs.StringVar(&profile, "profile", "", "only this profile (default: every profile with feedback)")
	fs.IntVar(&window, "window", monitor.DefaultWindow, "the last N outcomes of each profile version × segment")
	fs.BoolVar(&jsonOut, "json", false, "print the protojson GetMonitorResponse")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("plumb monitor takes no arguments: give --profile P")
	}
	if window < 1 || window > service.MaxMonitorWindow {
		return usageError("--window %d: want 1 to %d", window, service.MaxMonitorWindow)
	}
	b, err := t.open(std)
	if err != nil {
		return err
	}
	defer b.Close()
	resp, err := b.monitor().Monitor(ctx, &plumbv1.GetMonitorRequest{Profile: profile, Window: int32(window)})
	if err != nil {
		return api.Described(err)
	}
	if jsonOut {
		return printJSON(std, resp)
	}
	return monitorTable(std.out, resp)
}

func monitorTable(w io.Writer, resp *plumbv1.GetMonitorResponse) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROFILE\tVERSION\tSEGMENT\tANSWERS\tOUTCOMES\tECE [1−δ]\tCAL.GAP\tCOVERAGE\tANSWERED\tSEL.RISK\tBOUNDS (δ)\tε\tSYCOPHANCY (BASE)\tSERVED STANCE\tALARMS")
	num := func(v float64) string {
		if math.IsNaN(v) {
			return "-"
		}
		return fmt.Sprintf("%.3f", v)
	}
	for _, m := range resp.GetMonitors() {
		alarms := strings.Join(m.GetAlarms(), ",")
		if alarms == "" {
			alarms = "-"
		}
		seg := m.GetSegment()
		if seg == "" {
			seg = "(none)"
		}
		kind := "short"
		if m.GetLongAnswers() {
			kind = fmt.Sprintf("long, %d claims", m.GetClaims())
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s [%s, %s]\t%+.3f\t%s / %.2f\t%s\t%s\t[%.3f, %.3f]\t%.2f\t%s (%s)\t%s\t%s\n",
			m.GetProfile(), m.GetVersion(), seg, kind, m.GetOutcomes(), num(m.GetEce()), num(m.GetEceLower()), num(m.GetEceUpper()),
			m.GetCalibrationGap(), num(m.GetCoverage()), m.GetTargetCoverage(),
			num(m.GetAnswerRate()), num(m.GetSelectiveRisk()), m.GetRiskLowerBound(), m.GetRiskBound(), m.GetRisk(),
			num(m.GetSycophancyRate()), num(m.GetSycophancyBaseline()), num(m.GetServedSycophancyRate()), alarms)
	}
	return tw.Flush()
}
