package calibrate

// KeptAt1Agrees scores ex before (the uncalibrated profile) and after (p) the way an Evaluator
// does, with the analysis at T = 1 kept for p's adaptive temperature, and reports whether the
// records equal those of scoring each alone.
func KeptAt1Agrees(p *Profile, ex *Example) bool {
	ev := NewEvaluator(p)
	var shared, alone analysis
	rb := shared.scoreRecord(ev.before, ex, -2, ev.mode)
	shared.keepAt1()
	ra := shared.scoreRecord(ev.after, ex, -2, ev.mode)
	return rb == alone.scoreRecord(ev.before, ex, -2, ev.mode) && ra == alone.scoreRecord(ev.after, ex, -2, ev.mode)
}
