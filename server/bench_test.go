package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/plumbhq/plumb/internal/testenv"
	"github.com/plumbhq/plumb/monitor"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/service"
	"github.com/plumbhq/plumb/store"
)

// BenchmarkScoreReceipts: one gRPC Score of an MMLU question (4 options × 10 wordings) on
// loopback under a fitted profile, with and without a receipt signed into the response (with
// first: the second of two sub-benchmarks ran some 10 % slower here whichever it was).
func BenchmarkScoreReceipts(b *testing.B) {
	exs := mmluExamples(b)
	for _, on := range []bool{true, false} {
		b.Run(fmt.Sprintf("receipts=%v", on), func(b *testing.B) {
			h, req := mmluHarness(b, exs, on)
			ctx := context.Background()
			b.ResetTimer()
			for b.Loop() {
				resp, err := h.c.Score(ctx, req)
				if err != nil || (resp.GetReceipt() != "") != on {
					b.Fatal(resp.GetReceipt(), err)
				}
			}
		})
	}
}

// BenchmarkFeedback: FeedbackStreams of 10 000 outcomes each over gRPC on loopback, into a
// bbolt file and into PostgreSQL; reports outcomes/s.
func BenchmarkFeedback(b *testing.B) {
	const batch = 10_000
	for _, kind := range []string{"bbolt", "postgres"} {
		b.Run(kind, func(b *testing.B) {
			sg := signer(b, "k")
			var h *harness
			if kind == "bbolt" {
				h = start(b, Config{}, nil, service.Receipts(sg))
			} else {
				st, err := store.OpenPostgres(context.Background(), testenv.PostgresSchema(b), store.PostgresConfig{})
				if err != nil {
					b.Fatal(err)
				}
				h = startOn(b, st, Config{}, nil, service.Receipts(sg))
				b.Cleanup(func() { st.Close() })
			}
			label := &plumbv1.Label{Answers: []string{"A"}}
			for b.Loop() {
				b.StopTimer()
				reqs := make([]*plumbv1.FeedbackRequest, batch)
				for i := range reqs {
					r, err := sg.Sign(&plumbv1.ReceiptBody{Id: randomID(), Profile: "default", IssuedUnix: time.Now().Unix(),
						Answer: "A", Confidence: 0.7, PredictionSet: []string{"A", "B"}, Action: plumbv1.Action_ACTION_ANSWER})
					if err != nil {
						b.Fatal(err)
					}
					reqs[i] = &plumbv1.FeedbackRequest{Receipt: r, Label: label}
				}
				b.StartTimer()
				sendAll(b, h, reqs)
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "outcomes/s")
		})
	}
}

// randomID is a receipt id as Score makes them (monitor.NewID: the time, then random bytes), so
// that the store meets them as it does in production.
func randomID() []byte {
	id := monitor.NewID(time.Now())
	return id[:]
}

// BenchmarkFeedbackUnary: unary Feedback calls over gRPC on loopback, 32 callers at once, each
// outcome with its own receipt, into bbolt — what bench/feedback-load.sh drives with ghz, less
// ghz's own CPU.
func BenchmarkFeedbackUnary(b *testing.B) {
	sg := signer(b, "k")
	h := start(b, Config{}, nil, service.Receipts(sg))
	label := &plumbv1.Label{Answers: []string{"A"}}
	b.SetParallelism(16) // × GOMAXPROCS 2: 32 callers
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r, err := sg.Sign(&plumbv1.ReceiptBody{Id: randomID(), Profile: "default", IssuedUnix: time.Now().Unix(),
				Answer: "A", Confidence: 0.7, PredictionSet: []string{"A", "B"}, Action: plumbv1.Action_ACTION_ANSWER})
			if err != nil {
				b.Error(err)
				return
			}
			resp, err := h.c.Monitor.Feedback(context.Background(), &plumbv1.FeedbackRequest{Receipt: r, Label: label})
			if err != nil || resp.GetAccepted() != 1 {
				b.Error(resp, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "outcomes/s")
}

// BenchmarkScorePath: the server's Score path in process (decode done: conversion, engine,
// response, receipt, metrics), without and with receipts — what a receipt adds to each call.
func BenchmarkScorePath(b *testing.B) {
	exs := mmluExamples(b)
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("receipts=%v", on), func(b *testing.B) {
			h, req := mmluHarness(b, exs, on)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := h.srv.score(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// mmluHarness starts a server (with receipts when on) holding a profile "mmlu" fitted on the
// first 500 MMLU questions, and returns it with a request of question 600 under that profile.
func mmluHarness(b *testing.B, exs []*plumbv1.LabeledExample, on bool) (*harness, *plumbv1.ScoreRequest) {
	var opts []service.Option
	if on {
		opts = append(opts, service.Receipts(signer(b, "k")))
	}
	h := start(b, Config{}, nil, opts...)
	if _, err := h.c.Fit(context.Background(), &plumbv1.FitConfig{Name: "mmlu", Risk: 0.6, Activate: proto.Bool(true)}, seq(exs[:500])); err != nil {
		b.Fatal(err)
	}
	req := proto.CloneOf(exs[600].GetRequest())
	req.Profile = "mmlu"
	return h, req
}
