package calibrate_test

import (
	"bytes"
	"context"
	"runtime"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/plumbhq/plumb/api"
	"github.com/plumbhq/plumb/calibrate"
	"github.com/plumbhq/plumb/simulate"
)

// wire returns a profile and its report as the store would hold them, byte for byte (NaN
// metrics included, which no == compares).
func wire(t *testing.T, p *calibrate.Profile, r *calibrate.Report) []byte {
	t.Helper()
	p.Report = r
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(api.ProfileMessage(p, nil))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFitterMatchesFit: a fit fed one example at a time (a shard of one, merged, as a stream
// feeds it), or through shards merged in order, is the fit of the whole slice, to the last bit,
// for options and for samples.
func TestFitterMatchesFit(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  simulate.Config
	}{
		{"options", simulate.Config{Questions: 3000, Seed: 21, Stance: 1}},
		{"samples", simulate.Config{Questions: 1500, Seed: 22, Samples: 5, Wordings: 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exs, _ := simulate.Generate(&tc.cfg)
			want, wantRep, err := calibrate.Fit(context.Background(), exs, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := want.Check(); err != nil {
				t.Fatalf("a fitted profile fails its own check: %v", err)
			}
			one, err := calibrate.NewFitter(nil)
			if err != nil {
				t.Fatal(err)
			}
			sh := one.NewShard()
			for i := range exs {
				if err := sh.Add(context.Background(), &exs[i]); err != nil {
					t.Fatal(err)
				}
				if err := one.Merge(sh); err != nil {
					t.Fatal(err)
				}
			}
			sharded, _ := calibrate.NewFitter(nil)
			for lo := 0; lo < len(exs); lo += 700 {
				sh := sharded.NewShard()
				for i := lo; i < min(lo+700, len(exs)); i++ {
					if err := sh.Add(context.Background(), &exs[i]); err != nil {
						t.Fatal(err)
					}
				}
				if err := sharded.Merge(sh); err != nil {
					t.Fatal(err)
				}
			}
			for name, f := range map[string]*calibrate.Fitter{"one at a time": one, "sharded": sharded} {
				got, rep, err := f.Fit(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(wire(t, got, rep), wire(t, want, wantRep)) {
					t.Errorf("%s: the profile or report differs from Fit's", name)
				}
			}
		})
	}
}

// TestFitterRefuses: an example the engine refuses is named by its field, relative to the
// example, and a samples example after options examples is refused, within a shard or at the
// merge, which names it by its index.
func TestFitterRefuses(t *testing.T) {
	opts, _ := simulate.Generate(&simulate.Config{Questions: 3, Seed: 1})
	samples, _ := simulate.Generate(&simulate.Config{Questions: 1, Seed: 1, Samples: 3})
	f, _ := calibrate.NewFitter(nil)
	early := f.NewShard() // made before the fitter knows its examples' kind
	sh := f.NewShard()
	for i := range opts {
		if err := sh.Add(context.Background(), &opts[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Merge(sh); err != nil {
		t.Fatal(err)
	}
	bad := opts[0]
	bad.Label.Answers = nil
	err := sh.Add(context.Background(), &bad)
	if e, ok := err.(*calibrate.Error); !ok || e.Field != "label.answers" {
		t.Fatalf("no label: %v", err)
	}
	err = sh.Add(context.Background(), &samples[0])
	if e, ok := err.(*calibrate.Error); !ok || e.Field != "request.paraphrases" {
		t.Fatalf("samples after options: %v", err)
	}
	if f.Len() != 3 {
		t.Fatalf("%d examples after two refusals, want 3", f.Len())
	}
	if err := f.NewShard().Add(context.Background(), &samples[0]); err == nil {
		t.Fatal("a shard made after options took a samples example")
	}
	if err := early.Add(context.Background(), &samples[0]); err != nil {
		t.Fatal(err)
	}
	if err := f.Merge(early); err == nil || f.Len() != 3 || err.(*calibrate.Error).Field != "examples[3].request.paraphrases" {
		t.Fatalf("a shard of samples merged into options: %v, %d examples", err, f.Len())
	}
}

// TestFitterMemory: a fitter holds an options example of 10 wordings × 4 options in well under
// 1.5 KB of live heap (the examples themselves are not kept), and its Bytes estimate is within
// 25 % of what it holds.
func TestFitterMemory(t *testing.T) {
	const n = 50000
	f, _ := calibrate.NewFitter(nil)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	sh := f.NewShard()
	for ex := range simulate.All(&simulate.Config{Questions: n, Seed: 4}) {
		if err := sh.Add(context.Background(), &ex); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Merge(sh); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	held := float64(after.HeapAlloc) - float64(before.HeapAlloc)
	per := held / n
	est := float64(f.Bytes()) / n
	t.Logf("%.0f bytes of live heap an example; Bytes estimates %.0f", per, est)
	if per > 1500 {
		t.Errorf("%.0f bytes an example, want ≤ 1500", per)
	}
	if est < 0.75*per || est > 1.25*per {
		t.Errorf("Bytes estimates %.0f bytes an example, %.0f held", est, per)
	}
	runtime.KeepAlive(f)
}
