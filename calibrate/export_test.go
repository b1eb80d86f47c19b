package calibrate

// KeptAgrees scores each example before (the uncalibrated profile) and after (p) the way an
// Evaluator does, with one analysis across all of them that keeps the validated token masses,
// the label order and (for an adaptive p) the analysis at T = 1 between the two, and returns the index of the first
// example whose records differ from scoring each alone (−1 when none).
func KeptAgrees(p *Profile, exs []Example) int {
	ev := NewEvaluator(p)
	var shared, alone analysis
	for i := range exs {
		ex := &exs[i]
		if err := shared.check(&ex.Question, ev.mode); err != nil {
			panic(err)
		}
		rb := shared.scoreRecord(ev.before, ex, -2, ev.mode)
		shared.again(p.Temperature.Adaptive())
		ra := shared.scoreRecord(ev.after, ex, -2, ev.mode)
		if rb != alone.scoreRecord(ev.before, ex, -2, ev.mode) || ra != alone.scoreRecord(ev.after, ex, -2, ev.mode) {
			return i
		}
	}
	return -1
}
