package calibrate_test

import (
	"context"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/plumbhq/plumb/api"
	"github.com/plumbhq/plumb/calibrate"
	"github.com/plumbhq/plumb/ensemble"
	"github.com/plumbhq/plumb/internal/datasets"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/temperature"
)

// The SAC³ release's gpt-3.5-turbo answers (testdata/README.md): per question, the original
// wording answered by 10 samples at temperature 1 and 10 paraphrases answered once, greedily.

// sac3 reads a SAC³ file of testdata/sac3 as examples.
func sac3(t testing.TB, file string) []calibrate.Example {
	t.Helper()
	var out []calibrate.Example
	for _, line := range datasets.Lines(t, "sac3", file) {
		var m plumbv1.LabeledExample
		if err := protojson.Unmarshal(line, &m); err != nil {
			t.Fatal(err)
		}
		ex, err := api.Example(&m)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ex)
	}
	return out
}

// fits returns the reports of the default fit (seeds 0 to 19) of exs under cfg.
func fits(t *testing.T, exs []calibrate.Example, cfg calibrate.FitConfig) []*calibrate.Report {
	t.Helper()
	var out []*calibrate.Report
	for seed := range uint64(20) {
		c := cfg
		c.Seed = seed
		_, r, err := calibrate.Fit(context.Background(), exs, &c)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// TestSAC3Decisions: on open-domain QA, whose questions are not ambiguous and whose wordings
// but one have a single greedy answer, plumb does not ask to clarify: CLARIFY for ≤ 10 % of
// the report questions of each of 20 fits, and ≥ 90 % of those not answered ABSTAIN. Before
// the rule asked for evidence of each wording's confidence, 71–79 % got CLARIFY.
func TestSAC3Decisions(t *testing.T) {
	for _, file := range []string{"sac3-nq_open.jsonl", "sac3-nq_open-raw.jsonl", "sac3-prime.jsonl"} {
		t.Run(file, func(t *testing.T) {
			exs := sac3(t, file)
			all, err := calibrate.Evaluate(context.Background(), nil, exs)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range append(fits(t, exs, calibrate.FitConfig{}), all) {
				m := r.After
				if m.ClarifyRate > 0.10 {
					t.Errorf("report %d: CLARIFY for %.3f of questions, want ≤ 0.10", i, m.ClarifyRate)
				}
				if unanswered := 1 - m.AnswerRate; unanswered > 0 && m.AbstainRate/unanswered < 0.9 {
					t.Errorf("report %d: %.3f of unanswered questions abstain, want ≥ 0.9", i, m.AbstainRate/unanswered)
				}
			}
		})
	}
}

// TestSAC3SelectiveRisk: λ = 1 answers nothing. In the dry run of the issue that found it
// (no temperature, no map, 50/50 calibrate/report), every seed either answers nothing or keeps
// the selective error of what it answers ≤ ε = 0.1; before, λ = 1 still answered the
// unanimous (c = 1) answers, 22 % of them at a selective error of 0.29.
func TestSAC3SelectiveRisk(t *testing.T) {
	exs := sac3(t, "sac3-nq_open.jsonl")
	for i, r := range fits(t, exs, calibrate.FitConfig{Temperature: temperature.MethodNone, ConfidenceMap: calibrate.MapNone,
		Split: [3]float64{0, 0.5, 0.5}}) {
		m := r.After
		if m.AnswerRate != 0 && !(m.SelectiveError <= 0.1) {
			t.Errorf("seed %d: λ %.2f answers %.3f at selective error %.3f, want none or ≤ 0.1", i, r.Lambda, m.AnswerRate, m.SelectiveError)
		}
	}
}

// TestSAC3Calibration: 20 default fits (auto temperature, auto confidence map) of each visible
// SAC³ set improve calibration without costing discrimination on the held-out report split:
// mean ECE after ≤ before, mean AUROC after ≥ before − 0.005 and, on the two judged sets,
// Brier after < before in ≥ 18 of the 20 seeds; on sac3-nq_open the mean AUROC after is
// ≥ 0.755, the release's best self-check recomputation (testdata/README.md). The raw set is
// scored with exact matching of whole answer sentences, which only 7 % of its questions' gold
// answers match: on 50 report questions with 3 or 4 right, auto keeps the identity map in most
// seeds (no map beats it by a standard error) and Brier moves by noise, so there the test asks
// only that the mean Brier not get worse (by more than 0.001).
func TestSAC3Calibration(t *testing.T) {
	for _, tc := range []struct {
		file      string
		brierWins int     // seeds of 20 with Brier after < before, at least
		minAUROC  float64 // mean AUROC after, at least
	}{
		{"sac3-nq_open.jsonl", 18, 0.755},
		{"sac3-prime.jsonl", 18, 0},
		{"sac3-nq_open-raw.jsonl", 0, 0},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var eceB, eceA, brierB, brierA, aucB, aucA float64
			wins := 0
			reps := fits(t, sac3(t, tc.file), calibrate.FitConfig{})
			for _, r := range reps {
				eceB, eceA = eceB+r.Before.ECE/20, eceA+r.After.ECE/20
				brierB, brierA = brierB+r.Before.Brier/20, brierA+r.After.Brier/20
				aucB, aucA = aucB+r.Before.AUROC/20, aucA+r.After.AUROC/20
				if r.After.Brier < r.Before.Brier {
					wins++
				}
			}
			t.Logf("ECE %.4f → %.4f, Brier %.4f → %.4f (after < before in %d/20), AUROC %.4f → %.4f", eceB, eceA, brierB, brierA, wins, aucB, aucA)
			if eceA > eceB {
				t.Errorf("mean ECE after %.4f > before %.4f", eceA, eceB)
			}
			if aucA < aucB-0.005 || aucA < tc.minAUROC || math.IsNaN(aucA) {
				t.Errorf("mean AUROC after %.4f, want ≥ before %.4f − 0.005 and ≥ %.3f", aucA, aucB, tc.minAUROC)
			}
			if wins < tc.brierWins {
				t.Errorf("Brier after < before in %d of 20 seeds, want ≥ %d", wins, tc.brierWins)
			}
			if brierA > brierB+0.001 {
				t.Errorf("mean Brier after %.4f > before %.4f + 0.001", brierA, brierB)
			}
		})
	}
}

// TestSAC3ClusterKeys: a caller that judges meaning itself hands plumb its clustering. The raw
// answer sentences, keyed by the release's judgement (sac3-nq_open's text for each sample, as
// exact matching would read it: normalised) and labelled as sac3-nq_open is, fit to the very
// report sac3-nq_open gives, while plumb shows the
// raw sentences as answers; without keys, exact and F1 matching of the sentences give other
// reports, and each other's.
func TestSAC3ClusterKeys(t *testing.T) {
	judged := sac3(t, "sac3-nq_open.jsonl")
	raw := sac3(t, "sac3-nq_open-raw.jsonl")
	keyed := make([]calibrate.Example, len(raw))
	for i := range raw {
		keyed[i] = calibrate.Example{Question: raw[i].Question, Label: judged[i].Label}
		keyed[i].Question.Paraphrases = nil
		for p, para := range raw[i].Question.Paraphrases {
			para.Samples = append([]calibrate.Sample(nil), para.Samples...)
			for s := range para.Samples {
				para.Samples[s].Cluster = ensemble.Normalize(judged[i].Question.Paraphrases[p].Samples[s].Text)
			}
			keyed[i].Question.Paraphrases = append(keyed[i].Question.Paraphrases, para)
		}
	}
	report := func(exs []calibrate.Example, eq calibrate.Equivalence) *calibrate.Report {
		_, r, err := calibrate.Fit(context.Background(), exs, &calibrate.FitConfig{Seed: 3, Equivalence: eq})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	metrics := cmpopts.EquateNaNs()
	want := report(judged, calibrate.EquivalenceExact)
	if got := report(keyed, calibrate.EquivalenceExact); !cmp.Equal(want.After, got.After, metrics) || !cmp.Equal(want.Before, got.Before, metrics) {
		t.Errorf("keyed raw sentences differ from the judged file:\n%s", cmp.Diff(want.After, got.After, metrics))
	}
	r, err := calibrate.Score(context.Background(), nil, &keyed[0].Question)
	if err != nil {
		t.Fatal(err)
	}
	if r.Answer != raw[0].Question.Paraphrases[0].Samples[0].Text || len(r.Candidates) != 1 {
		t.Errorf("keyed answer %q among %d candidates, want the raw sentence %q alone", r.Answer, len(r.Candidates), raw[0].Question.Paraphrases[0].Samples[0].Text)
	}
	exact, f1 := report(raw, calibrate.EquivalenceExact), report(raw, calibrate.EquivalenceF1)
	for _, pair := range []struct {
		name string
		a, b *calibrate.Report
	}{{"exact and keys", exact, want}, {"F1 and keys", f1, want}, {"exact and F1", exact, f1}} {
		if cmp.Equal(pair.a.After, pair.b.After, metrics) {
			t.Errorf("%s give the same report", pair.name)
		}
	}
	t.Logf("accuracy: exact %.3f, F1 %.3f, keys %.3f", exact.After.Accuracy, f1.After.Accuracy, want.After.Accuracy)
}
