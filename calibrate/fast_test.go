package calibrate

import (
	"math"
	"testing"
)

// TestFastChecks: the inlined checks of the scoring path agree with the plain ones they stand
// for: finiteLogprob with logprobFault finding nothing, sameLabel with ==.
func TestFastChecks(t *testing.T) {
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1), math.MaxFloat64, -math.MaxFloat64,
		math.SmallestNonzeroFloat64, -math.SmallestNonzeroFloat64, 0, math.Copysign(0, -1), -1e300, -2.5,
		LogprobSlack, math.Nextafter(LogprobSlack, 1), math.Nextafter(LogprobSlack, 0), 1} {
		if got, want := finiteLogprob(v), logprobFault(v) == ""; got != want {
			t.Errorf("finiteLogprob(%v) = %v, logprobFault says %v", v, got, want)
		}
	}
	a := "label"
	strs := []string{"", "A", "B", "a", "AB", "AC", "label", string([]byte(a)), "labex", "é", "\xc3"}
	for _, x := range strs {
		for _, y := range strs {
			if got := sameLabel(x, y); got != (x == y) {
				t.Errorf("sameLabel(%q, %q) = %v", x, y, got)
			}
		}
	}
}
