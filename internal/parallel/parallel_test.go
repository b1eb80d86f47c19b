package parallel

import (
	"runtime"
	"sync/atomic"
	"testing"
)

// TestRanges: the ranges cover [0, n) exactly once, in order of w, and their number is Workers.
func TestRanges(t *testing.T) {
	for _, tc := range []struct {
		name       string
		n, minSize int
		procs      int
		want       int
	}{
		{"empty", 0, 10, 4, 1},
		{"fewer than a range", 7, 10, 4, 1},
		{"two ranges", 20, 10, 4, 2},
		{"capped by the cores", 1000, 10, 4, 4},
		{"one core", 1000, 1, 1, 1},
		{"minSize 0 means 1", 3, 0, 8, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(tc.procs))
			if got := Workers(tc.n, tc.minSize); got != tc.want {
				t.Fatalf("Workers(%d, %d) = %d, want %d", tc.n, tc.minSize, got, tc.want)
			}
			seen := make([]int32, tc.n)
			los := make([]int, tc.want)
			var calls atomic.Int32
			Ranges(tc.n, tc.minSize, func(w, lo, hi int) {
				calls.Add(1)
				los[w] = lo
				for i := lo; i < hi; i++ {
					atomic.AddInt32(&seen[i], 1)
				}
			})
			if int(calls.Load()) != tc.want {
				t.Errorf("%d calls, want %d", calls.Load(), tc.want)
			}
			for i, c := range seen {
				if c != 1 {
					t.Fatalf("item %d covered %d times", i, c)
				}
			}
			for w := 1; w < len(los); w++ {
				if los[w] < los[w-1] {
					t.Errorf("range %d starts at %d, before range %d at %d", w, los[w], w-1, los[w-1])
				}
			}
		})
	}
}
