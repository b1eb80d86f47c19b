package calibrate

import "context"

// SharedAgrees scores each example before (uncalibrated) and after (under p) as a Shard does,
// the analysis after reading an adaptive temperature's features from the analysis before, and
// returns the index of the first example whose records differ from scoring each alone, the
// analysis after computing its own distributions at T = 1 (−1 when none differ).
func SharedAgrees(p *Profile, exs []Example) int {
	ev := NewEvaluator(p, EquivalenceDefault)
	sh := ev.NewShard()
	var alone scorer
	for i := range exs {
		if err := sh.Add(context.Background(), &exs[i]); err != nil {
			panic(err)
		}
		q := &exs[i].Question
		mode := modeFor(q, ev.mode)
		alone.prep.prepare(context.Background(), q, mode)
		gold := alone.prep.gold(&exs[i].Label, mode)
		alone.before.analyze(&alone.prep, q, ev.before, nil)
		rb := alone.record(&alone.before, ev.before, q.Group, gold)
		alone.after.analyze(&alone.prep, q, ev.after, nil)
		ra := alone.record(&alone.after, ev.after, q.Group, gold)
		if rb != sh.rb[i] || ra != sh.ra[i] {
			return i
		}
	}
	return -1
}

// BadgePercent is badgePercent, for the tests of badge labels.
var BadgePercent = badgePercent
