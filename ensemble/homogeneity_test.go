package ensemble

import (
	"fmt"
	"math"
	"testing"
)

// TestHomogeneity against scipy 1.10:
//
//	python3 -c "from scipy.stats import chi2_contingency; import numpy as np
//	for t in [[[9,1],[1,9]], [[3,3,4],[2,5,3],[4,2,4]], [[10,0],[0,10],[10,0],[0,10]],
//	          [[5,5],[5,5]], [[7,2,1],[6,3,1],[1,1,8]]]:
//	    r = chi2_contingency(np.array(t), correction=False); print(r.statistic, r.dof, r.pvalue)"
//
// to 1e-12 on the statistic and 1e-9 relative on the p-value.
func TestHomogeneity(t *testing.T) {
	for _, tc := range []struct {
		table [][]int
		stat  float64
		df    int
		p     float64
	}{
		{[][]int{{9, 1}, {1, 9}}, 12.8, 1, 0.000346619351134667},
		{[][]int{{3, 3, 4}, {2, 5, 3}, {4, 2, 4}}, 2.2484848484848485, 4, 0.6901631972049759},
		{[][]int{{10, 0}, {0, 10}, {10, 0}, {0, 10}}, 40.0, 3, 1.065509033425585e-08},
		{[][]int{{5, 5}, {5, 5}}, 0, 1, 1},
		{[][]int{{7, 2, 1}, {6, 3, 1}, {1, 1, 8}}, 15.228571428571428, 4, 0.0042498832814639375},
	} {
		t.Run(fmt.Sprint(tc.table), func(t *testing.T) {
			k := len(tc.table[0])
			var counts []int
			for _, row := range tc.table {
				counts = append(counts, row...)
			}
			stat, df, p := Homogeneity(counts, k, nil)
			if math.Abs(stat-tc.stat) > 1e-12 || df != tc.df || math.Abs(p-tc.p) > 1e-9*tc.p {
				t.Errorf("Homogeneity = %.15g, %d, %.15g; want %.15g, %d, %.15g", stat, df, p, tc.stat, tc.df, tc.p)
			}
		})
	}
}

// TestHomogeneitySelection: unselected rows and the columns only they count are left out, and
// one sample per row never rejects (N(c − 1) on (N − 1)(c − 1) degrees of freedom).
func TestHomogeneitySelection(t *testing.T) {
	// Rows 0 and 2 are {9,1,0} and {1,9,0}; row 1 and column 2 are not selected ones.
	counts := []int{9, 1, 0, 4, 4, 7, 1, 9, 0}
	stat, df, p := Homogeneity(counts, 3, []bool{true, false, true})
	if math.Abs(stat-12.8) > 1e-12 || df != 1 || math.Abs(p-0.000346619351134667) > 1e-12 {
		t.Errorf("selected rows: %v %d %v, want 12.8 1 0.000347", stat, df, p)
	}
	if _, _, p := Homogeneity([]int{1, 0, 0, 1, 1, 0, 0, 1, 1, 0}, 2, nil); p < 0.05 {
		t.Errorf("five wordings of one sample each, split 3/2: p = %v, want ≥ 0.05", p)
	}
	if _, df, p := Homogeneity([]int{3, 0, 5, 0}, 2, nil); df != 0 || p != 1 {
		t.Errorf("one column: df %d p %v, want no test", df, p)
	}
}

// TestHomogeneityManyRows: more rows than the stack buffer holds (70 of {9,1} and {1,9}
// alternating). By hand: every expected count is 10·350/700 = 5, every cell adds 4²/5 = 3.2,
// so the statistic is 140·3.2 = 448 on 69 degrees of freedom; with only the first 34 rows
// selected (17 of each), 68·3.2 = 217.6 on 33.
func TestHomogeneityManyRows(t *testing.T) {
	var counts []int
	use := make([]bool, 70)
	for r := range 70 {
		if r%2 == 0 {
			counts = append(counts, 9, 1)
		} else {
			counts = append(counts, 1, 9)
		}
		use[r] = r < 34
	}
	if stat, df, _ := Homogeneity(counts, 2, nil); math.Abs(stat-448) > 1e-9 || df != 69 {
		t.Errorf("70 rows: %v on %d, want 448 on 69", stat, df)
	}
	if stat, df, _ := Homogeneity(counts, 2, use); math.Abs(stat-217.6) > 1e-9 || df != 33 {
		t.Errorf("34 selected rows: %v on %d, want 217.6 on 33", stat, df)
	}
}
