package calibrate

import (
	"slices"
	"strconv"
)

// Evaluator accumulates a report of a profile (and of the uncalibrated default, as "before")
// on labelled examples added in batches. It keeps two 32-byte records per question and nothing
// of the questions, so an evaluation of millions streams in bounded memory.
type Evaluator struct {
	before, after *Profile
	mode          Equivalence
	rb, ra        []record
	groups        []string
	index         map[string]int32
}

// NewEvaluator returns an empty evaluation of p (nil means Default()).
func NewEvaluator(p *Profile) *Evaluator {
	if p == nil {
		p = Default()
	}
	before := Default()
	before.Alpha, before.Equivalence, before.Syco = p.Alpha, p.Equivalence, p.Syco
	return newEvaluator(before, p, p.Equivalence)
}

func newEvaluator(before, after *Profile, mode Equivalence) *Evaluator {
	return &Evaluator{before: before, after: after, mode: mode, index: map[string]int32{}}
}

// Len returns the number of questions added.
func (e *Evaluator) Len() int { return len(e.ra) }

// Add validates a batch and scores it over the machine's cores. Errors name the example by its
// position in the whole evaluation (examples[Len()+i]); a refused batch adds nothing.
func (e *Evaluator) Add(exs []Example) error {
	if len(exs) == 0 {
		return nil
	}
	if err := validateExamples(exs, e.Len(), e.mode); err != nil {
		return err
	}
	for i := range exs {
		if err := checkEvidence(e.after, &exs[i].Question); err != nil {
			de := err.(*Error)
			de.Field = "examples[" + strconv.Itoa(e.Len()+i) + "].request." + de.Field
			return de
		}
	}
	e.add(exs, nil, nil)
	return nil
}

// add scores exs[idx[j]] (all of exs when idx is nil) with gold candidates gold[idx[j]] (found
// from the labels when gold is nil).
func (e *Evaluator) add(exs []Example, idx, gold []int) {
	n := len(exs)
	if idx != nil {
		n = len(idx)
	}
	start := len(e.ra)
	e.rb = slices.Grow(e.rb, n)[:start+n]
	e.ra = slices.Grow(e.ra, n)[:start+n]
	parallel(n, func(s *analysis, j int) {
		i := j
		if idx != nil {
			i = idx[j]
		}
		g := -2
		if gold != nil {
			g = gold[i]
		}
		e.rb[start+j] = s.scoreRecord(e.before, &exs[i], g, e.mode)
		e.ra[start+j] = s.scoreRecord(e.after, &exs[i], g, e.mode)
	})
	for j := 0; j < n; j++ {
		i := j
		if idx != nil {
			i = idx[j]
		}
		gi := int32(-1)
		if g := exs[i].Question.Group; g != "" {
			var ok bool
			if gi, ok = e.index[g]; !ok {
				gi = int32(len(e.groups))
				e.index[g] = gi
				e.groups = append(e.groups, g)
			}
		}
		e.rb[start+j].group, e.ra[start+j].group = gi, gi
	}
}

// Report summarises what was added.
func (e *Evaluator) Report() *Report {
	p := e.after
	r := &Report{
		Examples:          len(e.ra),
		Before:            summarize(e.rb),
		After:             summarize(e.ra),
		Profile:           ProfileRef{Name: p.Name, Version: p.Version},
		Curve:             p.Curve,
		Map:               p.Map,
		Alpha:             p.Alpha,
		Quantile:          p.Quantiles.Global,
		Lambda:            p.Lambda,
		Risk:              p.Risk,
		TemperatureMethod: methodName(p.TemperatureMethod),
		Temperature:       p.Temperature.Theta,
	}
	r.BinsBefore = ReliabilityBins(confidences(e.rb))
	r.BinsAfter = ReliabilityBins(confidences(e.ra))
	// One group at a time, in name order, through an index sorted by group: the copies never
	// exceed the largest group.
	rank := make([]int32, len(e.groups)) // group index → position in name order
	names := slices.Clone(e.groups)
	slices.Sort(names)
	for pos, g := range names {
		rank[e.index[g]] = int32(pos)
	}
	var idx []int32
	for i := range e.ra {
		if e.ra[i].group >= 0 {
			idx = append(idx, int32(i))
		}
	}
	slices.SortStableFunc(idx, func(a, b int32) int { return int(rank[e.ra[a].group] - rank[e.ra[b].group]) })
	var gb, ga []record
	for start := 0; start < len(idx); {
		gi := e.ra[idx[start]].group
		gb, ga = gb[:0], ga[:0]
		end := start
		for ; end < len(idx) && e.ra[idx[end]].group == gi; end++ {
			gb = append(gb, e.rb[idx[end]])
			ga = append(ga, e.ra[idx[end]])
		}
		r.Groups = append(r.Groups, GroupReport{Group: e.groups[gi], Before: summarize(gb), After: summarize(ga)})
		start = end
	}
	return r
}

func confidences(rs []record) ([]float64, []bool) {
	c := make([]float64, len(rs))
	y := make([]bool, len(rs))
	for i, x := range rs {
		c[i], y[i] = x.conf, x.correct
	}
	return c, y
}

// Evaluate scores labelled examples under profile p (and the uncalibrated default as
// "before") and reports; it writes nothing. Errors are as for Fit's validation.
func Evaluate(p *Profile, examples []Example) (*Report, error) {
	e := NewEvaluator(p)
	if len(examples) == 0 {
		return nil, &Error{Kind: Precondition, Field: "examples", Msg: "no examples"}
	}
	if err := e.Add(examples); err != nil {
		return nil, err
	}
	return e.Report(), nil
}
