// Package parallel runs a loop over [0, n) on the machine's cores in contiguous ranges. It is
// plumb's one worker pool for work that is all in memory (fits, objective evaluations, batches
// of an evaluation); the JSON Lines pipeline of internal/jsonl streams files instead. It is a
// leaf like internal/fmath: it imports the standard library only, so the numeric packages may
// use it.
package parallel

import (
	"runtime"
	"sync"
)

// Workers returns how many ranges Ranges splits n items into: GOMAXPROCS, but no more than
// n/minSize (at least 1), so that each range is worth a goroutine.
func Workers(n, minSize int) int {
	return max(1, min(runtime.GOMAXPROCS(0), n/max(minSize, 1)))
}

// Ranges splits [0, n) into Workers(n, minSize) contiguous ranges of nearly equal size, calls
// body(w, lo, hi) for range w on its own goroutine (the last on the caller's) and waits for all
// of them. Body w may write to the w-th element of a slice of per-worker results without
// locking.
func Ranges(n, minSize int, body func(w, lo, hi int)) {
	workers := Workers(n, minSize)
	if workers == 1 {
		body(0, 0, n)
		return
	}
	var wg sync.WaitGroup
	for w := range workers - 1 {
		wg.Go(func() { body(w, w*n/workers, (w+1)*n/workers) })
	}
	body(workers-1, (workers-1)*n/workers, n)
	wg.Wait()
}
