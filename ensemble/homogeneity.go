package ensemble

import "gonum.org/v1/gonum/stat/distuv"

// Homogeneity tests whether the rows selected by use (all when nil) of a table of counts
// (counts[p*k+j]: row p's count in column j, k columns) come from one distribution: Pearson's
// chi-square test of homogeneity (Pearson 1900), without continuity correction, as
// scipy.stats.chi2_contingency(table, correction=False) computes it. Columns no selected row
// counts are left out; with fewer than two rows or columns left, or an empty row, there is no
// test and it returns 0, 0, 1. It returns the statistic Σ (O − E)²/E, E = row total × column
// total / grand total, its degrees of freedom (rows − 1)(columns − 1) and the p-value, the
// chi-square upper tail. With a few counts per row the chi-square distribution only
// approximates the statistic's; a wording of one sample can never make it small: one count per
// row gives a statistic of N(c − 1) on (N − 1)(c − 1) degrees of freedom.
// It panics if len(counts) is not a multiple of k or use has the wrong length.
func Homogeneity(counts []int, k int, use []bool) (stat float64, df int, p float64) {
	if k == 0 || len(counts)%k != 0 {
		panic("ensemble: count table length mismatch")
	}
	n := len(counts) / k
	if use != nil && len(use) != n {
		panic("ensemble: use length mismatch")
	}
	// Row totals: 0 marks a row left out (a selected row of 0 ends the test).
	var buf [64]float64 // on the stack: a question has at most 64 wordings
	var rowTotal []float64
	if n <= len(buf) {
		rowTotal = buf[:n]
	} else {
		rowTotal = make([]float64, n)
	}
	var total float64
	rows := 0
	for r := 0; r < n; r++ {
		if use != nil && !use[r] {
			continue
		}
		var t int
		for _, c := range counts[r*k : (r+1)*k] {
			t += c
		}
		if t == 0 {
			return 0, 0, 1
		}
		rowTotal[r] = float64(t)
		total += float64(t)
		rows++
	}
	if rows < 2 {
		return 0, 0, 1
	}
	cols := 0
	for j := 0; j < k; j++ {
		var ct float64
		for r, rt := range rowTotal {
			if rt > 0 {
				ct += float64(counts[r*k+j])
			}
		}
		if ct == 0 {
			continue
		}
		cols++
		for r, rt := range rowTotal {
			if rt > 0 {
				e := rt * ct / total
				d := float64(counts[r*k+j]) - e
				stat += d * d / e
			}
		}
	}
	if cols < 2 {
		return 0, 0, 1
	}
	df = (rows - 1) * (cols - 1)
	return stat, df, distuv.ChiSquared{K: float64(df)}.Survival(stat)
}
