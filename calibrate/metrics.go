package calibrate

import (
	"iter"
	"math"
	"slices"

	"github.com/plumbhq/plumb/conformal"
)

// Bins is the number of reliability bins of ECE, adaptive ECE and MCE.
const Bins = 15

// Metrics summarises scored, labelled questions (docs/DESIGN.md "Fitting a profile", step 5). A
// metric that is undefined on them is NaN: every one of no questions; AUROC when all were right
// or all wrong; the selective error when nothing was answered; the wording agreement without a
// question of ≥ 4 pooled wordings; the sycophancy shift without a USER_STANCE wording.
type Metrics struct {
	Examples         int
	Accuracy         float64 // mean 1[k* correct]
	ECE              float64 // Σ_b (n_b/n)|acc_b − conf_b| over 15 equal-width bins [0,1/15], (1/15,2/15], …
	AdaptiveECE      float64 // the same over 15 equal-mass bins (Nixon et al. 2019)
	MCE              float64 // max_b |acc_b − conf_b| over non-empty equal-width bins
	Brier            float64 // mean (c − correct)²
	NLL              float64 // mean binary NLL of c against correct, c held to [1e-12, 1 − 1e-12]
	AUROC            float64 // P(c of a right answer > c of a wrong one), ties ½
	AURC             float64 // area under the selective risk–coverage curve (Geifman et al. 2019), ties averaged
	Coverage         float64 // mean 1[gold ∈ set]
	MeanSetSize      float64
	SingletonRate    float64
	AnswerRate       float64
	ClarifyRate      float64
	AbstainRate      float64
	SelectiveError   float64 // errors among ANSWER / answered
	WordingAgreement float64 // split-half agreement of k* over questions with ≥ 4 pooled wordings
	SycophancyShift  float64 // mean shift over questions with USER_STANCE wordings
}

// Bin is one reliability bin.
type Bin struct {
	Lower, Upper float64
	Count        int
	Confidence   float64 // mean c
	Accuracy     float64 // mean correct
}

// record is what one scored, labelled question contributes to the metrics.
// It is kept small (32 bytes): an evaluation holds two per question.
type record struct {
	conf      float64
	shift     float64
	size      int32
	group     int32 // index into the evaluation's group names; −1 for none
	action    int8
	agree     int8 // 1 agree, 0 disagree, −1 fewer than 4 pooled wordings
	correct   bool
	covered   bool
	hasStance bool
}

// binOf returns the equal-width bin of c: [0,1/15] is bin 0, ((i−1)/15, i/15] bin i−1.
func binOf(c float64) int {
	b := int(math.Ceil(c*Bins)) - 1
	return min(max(b, 0), Bins-1)
}

func calibrationErrors(bins []Bin, n int) (ece, mce float64) {
	for _, b := range bins {
		if b.Count == 0 {
			continue
		}
		gap := math.Abs(b.Accuracy - b.Confidence)
		ece += float64(b.Count) / float64(n) * gap
		mce = math.Max(mce, gap)
	}
	return ece, mce
}

// scored is one question's confidence, its group's rank, and its position in the input with
// whether it was right in the top bit (16 bytes: an evaluation sorts millions). Sorting by
// (c, position) orders ties as a stable sort would, without a stable sort's cost.
type scored struct {
	c  float64
	g  uint32
	at uint32 // position in the input; the top bit: right
}

const rightBit = 1 << 31

func newScored(c float64, g, i int, right bool) scored {
	x := scored{c: c, g: uint32(g), at: uint32(i)}
	if right {
		x.at |= rightBit
	}
	return x
}

func (x scored) right() bool { return x.at&rightBit != 0 }

// sortScored sorts by (c, position), the group left out.
func sortScored(s []scored) {
	slices.SortFunc(s, func(a, b scored) int {
		switch {
		case a.c < b.c:
			return -1
		case a.c > b.c:
			return 1
		}
		return int(a.at&^rightBit) - int(b.at&^rightBit)
	})
}

// radixMin is the length from which sortPositions sorts by radix.
const radixMin = 1 << 14

// sortPositions sorts s, whose positions ascend, by (c, position) as sortScored does, using
// tmp (as long as s) as scratch, and returns whichever of the two holds the result. From
// radixMin scores on it is a stable least-significant-digit radix sort on the bits of c,
// 16 at a time (the bits of a non-negative float order as its value; stability keeps ties in
// position order): four passes instead of n log n comparisons.
func sortPositions(s, tmp []scored) []scored {
	if len(s) < radixMin {
		sortScored(s)
		return s
	}
	counts := make([]int, 4<<16)
	for _, x := range s {
		k := math.Float64bits(x.c)
		if k>>63 != 0 {
			sortScored(s) // a negative confidence: not what the bits order
			return s
		}
		for d := range 4 {
			counts[d<<16|int(k>>(16*d)&0xFFFF)]++
		}
	}
	for d := range 4 {
		c := counts[d<<16 : (d+1)<<16]
		if c[math.Float64bits(s[0].c)>>(16*d)&0xFFFF] == len(s) {
			continue // every score has this digit
		}
		at := 0
		for b, n := range c {
			c[b] = at
			at += n
		}
		for _, x := range s {
			b := math.Float64bits(x.c) >> (16 * d) & 0xFFFF
			tmp[c[b]] = x
			c[b]++
		}
		s, tmp = tmp, s
	}
	return s
}

// byGroup puts the scores of s that have a group (g < groups) into dst (at least as long),
// grouped in group order and keeping s's order within each group (a counting sort), and
// returns them with each group's count.
func byGroup(s, dst []scored, groups int) ([]scored, []int) {
	counts := make([]int, groups+1)
	for _, x := range s {
		if int(x.g) < groups {
			counts[x.g+1]++
		}
	}
	for g := 1; g <= groups; g++ {
		counts[g] += counts[g-1]
	}
	out := dst[:counts[groups]]
	next := slices.Clone(counts[:groups])
	for _, x := range s {
		if int(x.g) < groups {
			out[next[x.g]] = x
			next[x.g]++
		}
	}
	for g := range groups {
		counts[g] = counts[g+1] - counts[g]
	}
	return out, counts[:groups]
}

func sortedScores(conf []float64, correct []bool) []scored {
	s := make([]scored, len(conf))
	for i, c := range conf {
		s[i] = newScored(c, 0, i, correct[i])
	}
	sortScored(s)
	return s
}

// adaptiveECE splits the questions sorted by confidence into 15 bins of equal count (the first
// n mod 15 one larger, as numpy.array_split does).
func adaptiveECE(conf []float64, correct []bool) float64 {
	return adaptiveECEOf(sortedScores(conf, correct))
}

// adaptiveECEOf is adaptiveECE of questions sorted by sortScored.
func adaptiveECEOf(s []scored) float64 {
	n := len(s)
	var ece float64
	start := 0
	for b := 0; b < Bins && start < n; b++ {
		size := n / Bins
		if b < n%Bins {
			size++
		}
		var c, a float64
		for _, x := range s[start : start+size] {
			c += x.c
			if x.right() {
				a++
			}
		}
		if size > 0 {
			ece += math.Abs(a-c) / float64(n)
		}
		start += size
	}
	return ece
}

// AUROC returns the Mann–Whitney estimate of P(c⁺ > c⁻) with ties counted ½ (average ranks),
// and NaN when either class is empty.
func AUROC(conf []float64, correct []bool) float64 {
	return aurocOf(sortedScores(conf, correct))
}

// aurocOf is AUROC of questions sorted by sortScored.
func aurocOf(s []scored) float64 {
	n := len(s)
	var pos, neg, rankSum float64
	for i := 0; i < n; {
		j := i
		for j < n && s[j].c == s[i].c {
			j++
		}
		avg := float64(i+j+1) / 2 // average of ranks i+1..j
		for _, x := range s[i:j] {
			if x.right() {
				rankSum += avg
				pos++
			}
		}
		i = j
	}
	neg = float64(n) - pos
	if pos == 0 || neg == 0 {
		return math.NaN() // one class: nothing to discriminate
	}
	return (rankSum - pos*(pos+1)/2) / (pos * neg)
}

// AURC returns the mean over k = 1..n of the error rate among the k most confident, the errors
// of a tie group spread evenly over its positions.
func AURC(conf []float64, correct []bool) float64 {
	return aurcOf(sortedScores(conf, correct))
}

// aurcOf is AURC of questions sorted by sortScored (it walks them from the most confident;
// the order within a tie group does not matter).
func aurcOf(s []scored) float64 {
	n := len(s)
	if n == 0 {
		return 0
	}
	var sum, errs float64
	for i := 0; i < n; {
		// s[n-1-i] is the (i+1)-th most confident.
		j := i
		var ge float64
		for j < n && s[n-1-j].c == s[n-1-i].c {
			if !s[n-1-j].right() {
				ge++
			}
			j++
		}
		g := float64(j - i)
		for m := 1; m <= j-i; m++ {
			sum += (errs + ge*float64(m)/g) / float64(i+m)
		}
		errs += ge
		i = j
	}
	return sum / float64(n)
}

// tally accumulates what the metrics sum over questions, and the reliability bins.
type tally struct {
	m                                      Metrics // sums until metrics divides
	bins                                   [Bins]Bin
	answered, answeredWrong, agreeN, agree int
	stanceN                                int
}

func (t *tally) add(r *record) {
	m := &t.m
	m.Examples++
	b := &t.bins[binOf(r.conf)]
	b.Count++
	b.Confidence += r.conf
	if r.correct {
		m.Accuracy++
		b.Accuracy++
		m.Brier += (r.conf - 1) * (r.conf - 1)
		m.NLL += logLoss(r.conf, 1)
	} else {
		m.Brier += r.conf * r.conf
		m.NLL += logLoss(r.conf, 0)
	}
	if r.covered {
		m.Coverage++
	}
	m.MeanSetSize += float64(r.size)
	if r.size == 1 {
		m.SingletonRate++
	}
	switch Action(r.action) {
	case Answer:
		m.AnswerRate++
		t.answered++
		if !r.correct {
			t.answeredWrong++
		}
	case Clarify:
		m.ClarifyRate++
	case Abstain:
		m.AbstainRate++
	}
	if r.agree >= 0 {
		t.agreeN++
		t.agree += int(r.agree)
	}
	if r.hasStance {
		t.stanceN++
		m.SycophancyShift += r.shift
	}
}

// metrics finishes the tally, given its questions' scores in sortScored's order.
func (t *tally) metrics(sorted []scored) (Metrics, []Bin) {
	m := t.m
	bins := make([]Bin, Bins)
	for i := range bins {
		bins[i] = t.bins[i]
		bins[i].Lower, bins[i].Upper = float64(i)/Bins, float64(i+1)/Bins
		if c := float64(bins[i].Count); c > 0 {
			bins[i].Confidence /= c
			bins[i].Accuracy /= c
		}
	}
	n := m.Examples
	nan := math.NaN()
	if n == 0 {
		return Metrics{Accuracy: nan, ECE: nan, AdaptiveECE: nan, MCE: nan, Brier: nan, NLL: nan, AUROC: nan,
			AURC: nan, Coverage: nan, MeanSetSize: nan, SingletonRate: nan, AnswerRate: nan, ClarifyRate: nan,
			AbstainRate: nan, SelectiveError: nan, WordingAgreement: nan, SycophancyShift: nan}, bins
	}
	fn := float64(n)
	for _, p := range []*float64{&m.Accuracy, &m.Brier, &m.NLL, &m.Coverage, &m.MeanSetSize,
		&m.SingletonRate, &m.AnswerRate, &m.ClarifyRate, &m.AbstainRate} {
		*p /= fn
	}
	m.SelectiveError = ratio(float64(t.answeredWrong), t.answered)
	m.WordingAgreement = ratio(float64(t.agree), t.agreeN)
	m.SycophancyShift = ratio(m.SycophancyShift, t.stanceN)
	m.ECE, m.MCE = calibrationErrors(bins, n)
	m.AdaptiveECE = adaptiveECEOf(sorted)
	m.AUROC = aurocOf(sorted)
	m.AURC = aurcOf(sorted)
	return m, bins
}

// ratio returns sum/n, or NaN (undefined) when n is 0.
func ratio(sum float64, n int) float64 {
	if n == 0 {
		return math.NaN()
	}
	return sum / float64(n)
}

// summarize computes the metrics of records and their reliability bins.
func summarize(rs []record) (Metrics, []Bin) {
	var t tally
	sorted := make([]scored, len(rs))
	for i := range rs {
		t.add(&rs[i])
		sorted[i] = newScored(rs[i].conf, 0, i, rs[i].correct)
	}
	return t.metrics(sortPositions(sorted, make([]scored, len(sorted))))
}

// recordBlock is the size of a recordLog's blocks (512 KiB).
const recordBlock = 1 << 14

// recordLog is an append-only list of records in fixed-size blocks: growing never copies
// what is there, so an evaluation of millions holds its records and little else.
type recordLog struct {
	blocks [][]record
	n      int
}

func (l *recordLog) add(rs []record) {
	for len(rs) > 0 {
		if len(l.blocks) == 0 || len(l.blocks[len(l.blocks)-1]) == recordBlock {
			l.blocks = append(l.blocks, make([]record, 0, recordBlock))
		}
		last := &l.blocks[len(l.blocks)-1]
		k := min(len(rs), recordBlock-len(*last))
		*last = append(*last, rs[:k]...)
		rs = rs[k:]
		l.n += k
	}
}

func (l *recordLog) at(i int) *record { return &l.blocks[i/recordBlock][i%recordBlock] }

// all yields the records in order with their positions.
func (l *recordLog) all() iter.Seq2[int, *record] {
	return func(yield func(int, *record) bool) {
		i := 0
		for _, b := range l.blocks {
			for j := range b {
				if !yield(i, &b[j]) {
					return
				}
				i++
			}
		}
	}
}

// GroupReport holds the metrics of one group.
type GroupReport struct {
	Group  string
	Before Metrics
	After  Metrics
}

// Report is a fit's or an evaluation's account of the profile on held-out data.
type Report struct {
	Examples  int // questions reported on
	Tune      int // questions the temperature and map were fitted on
	Calibrate int // questions the conformal quantiles and λ were set on
	Before    Metrics
	After     Metrics
	Groups    []GroupReport
	// BinsBefore and BinsAfter are the reliability bins of the diagram.
	BinsBefore []Bin
	BinsAfter  []Bin
	// Curve is the calibration risk curve Learn-then-Test chose λ from.
	Curve []conformal.RiskPoint

	Profile           ProfileRef
	TemperatureMethod string
	Temperature       []float64 // θ of log T = θ·φ (one value: global log T)
	MapMethod         string    // the confidence map kept: none, platt or logistic
	MapReason         string    // why (the cross-validated comparison), when auto chose it
	Map               []float64
	Alpha             float64
	Quantile          float64
	Lambda            float64
	Risk              float64
	// Warnings are what a user of the profile should know, e.g. that it answers nothing.
	Warnings []string
	// Certifiable is, when λ = 1 or λ answers under 5 % of the calibration split, the smallest
	// risk Learn-then-Test certifies with a useful threshold; nil otherwise or when there is none.
	Certifiable *CertifiableRisk
	// Claims is, for a claims profile, the report of the claims of the held-out long answers.
	Claims *ClaimReport
}

// CertifiableRisk is the smallest selective risk ε = 0.01, 0.02, … at which Learn-then-Test
// finds a threshold λ answering at least 5 % of the calibration questions.
type CertifiableRisk struct {
	Risk       float64
	Lambda     float64
	AnswerRate float64 // the share of calibration questions with c ≥ λ
}

// Outcome is one scored question's result against its label, as the metrics read it: what a
// monitor knows of an answer from its receipt and its feedback.
type Outcome struct {
	Confidence float64
	Correct    bool // the answer k* was acceptable
	Covered    bool // the prediction set held an acceptable answer
	SetSize    int
	Action     Action
}

// Summarize returns the metrics of outcomes as a report computes them (the wording agreement
// and the sycophancy shift, which outcomes do not carry, are NaN).
func Summarize(outcomes []Outcome) Metrics {
	rs := make([]record, len(outcomes))
	for i, o := range outcomes {
		rs[i] = record{conf: o.Confidence, correct: o.Correct, covered: o.Covered, size: int32(o.SetSize),
			action: int8(o.Action), agree: -1, group: -1}
	}
	m, _ := summarize(rs)
	return m
}

// BinOf is the reliability bin of confidence c: 0 for [0, 1/15], b for (b/15, (b+1)/15].
func BinOf(c float64) int { return binOf(c) }
