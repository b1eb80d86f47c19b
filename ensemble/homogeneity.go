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
		total += float64(t)
		rows++
	}
	cols := 0
	for j := 0; j < k; j++ {
		if colTotal(counts, k, j, use) > 0 {
			cols++
		}
	}
	if rows < 2 || cols < 2 {
		return 0, 0, 1
	}
	for r := 0; r < n; r++ {
		if use != nil && !use[r] {
			continue
		}
		row := counts[r*k : (r+1)*k]
		var rt float64
		for _, c := range row {
			rt += float64(c)
		}
		for j, c := range row {
			ct := colTotal(counts, k, j, use)
			if ct == 0 {
				continue
			}
			e := rt * ct / total
			d := float64(c) - e
			stat += d * d / e
		}
	}
	df = (rows - 1) * (cols - 1)
	return stat, df, distuv.ChiSquared{K: float64(df)}.Survival(stat)
}

// colTotal sums column j over the selected rows.
func colTotal(counts []int, k, j int, use []bool) float64 {
	var t int
	for r := 0; r*k < len(counts); r++ {
		if use == nil || use[r] {
			t += counts[r*k+j]
		}
	}
	return float64(t)
}
