// Package testenv holds the switch of plumb's long statistical test runs. `go test ./...` runs
// every assertion on samples sized to finish in minutes on two cores; with PLUMB_LONG=1 (set
// by .ci/run) the statistical tests run at full size — coverage over 100 seeds, the fitted ECE
// of sampled evidence — with the tolerances their larger samples allow.
package testenv

import "os"

// Long reports whether the long runs are on: PLUMB_LONG=1.
func Long() bool { return os.Getenv("PLUMB_LONG") == "1" }
