package calibrate

import (
	"math"
	"sort"

	"github.com/plumbhq/plumb/conformal"
)

// Bins is the number of reliability bins of ECE, adaptive ECE and MCE.
const Bins = 15

// Metrics summarises scored, labelled questions (DESIGN.md "Fitting a profile", step 5).
type Metrics struct {
	Examples         int
	Accuracy         float64 // mean 1[k* correct]
	ECE              float64 // Σ_b (n_b/n)|acc_b − conf_b| over 15 equal-width bins [0,1/15], (1/15,2/15], …
	AdaptiveECE      float64 // the same over 15 equal-mass bins (Nixon et al. 2019)
	MCE              float64 // max_b |acc_b − conf_b| over non-empty equal-width bins
	Brier            float64 // mean (c − correct)²
	NLL              float64 // mean binary NLL of c against correct, c held to [1e-12, 1 − 1e-12]
	AUROC            float64 // P(c of a right answer > c of a wrong one), ties ½; 0.5 when one class is missing
	AURC             float64 // area under the selective risk–coverage curve (Geifman et al. 2019), ties averaged
	Coverage         float64 // mean 1[gold ∈ set]
	MeanSetSize      float64
	SingletonRate    float64
	AnswerRate       float64
	ClarifyRate      float64
	AbstainRate      float64
	SelectiveError   float64 // errors among ANSWER / answered; 0 when nothing is answered
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

// ReliabilityBins returns the 15 equal-width bins of confidences conf against correct.
func ReliabilityBins(conf []float64, correct []bool) []Bin {
	bins := make([]Bin, Bins)
	for i := range bins {
		bins[i].Lower, bins[i].Upper = float64(i)/Bins, float64(i+1)/Bins
	}
	for i, c := range conf {
		b := &bins[binOf(c)]
		b.Count++
		b.Confidence += c
		if correct[i] {
			b.Accuracy++
		}
	}
	for i := range bins {
		if n := float64(bins[i].Count); n > 0 {
			bins[i].Confidence /= n
			bins[i].Accuracy /= n
		}
	}
	return bins
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

// adaptiveECE splits the questions sorted by confidence into 15 bins of equal count (the first
// n mod 15 one larger, as numpy.array_split does).
func adaptiveECE(conf []float64, correct []bool) float64 {
	n := len(conf)
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return conf[idx[a]] < conf[idx[b]] })
	var ece float64
	start := 0
	for b := 0; b < Bins && start < n; b++ {
		size := n / Bins
		if b < n%Bins {
			size++
		}
		var c, a float64
		for _, i := range idx[start : start+size] {
			c += conf[i]
			if correct[i] {
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
// and 0.5 when either class is empty.
func AUROC(conf []float64, correct []bool) float64 {
	n := len(conf)
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return conf[idx[a]] < conf[idx[b]] })
	var pos, neg, rankSum float64
	for i := 0; i < n; {
		j := i
		for j < n && conf[idx[j]] == conf[idx[i]] {
			j++
		}
		avg := float64(i+j+1) / 2 // average of ranks i+1..j
		for _, k := range idx[i:j] {
			if correct[k] {
				rankSum += avg
				pos++
			}
		}
		i = j
	}
	neg = float64(n) - pos
	if pos == 0 || neg == 0 {
		return 0.5
	}
	return (rankSum - pos*(pos+1)/2) / (pos * neg)
}

// AURC returns the mean over k = 1..n of the error rate among the k most confident, the errors
// of a tie group spread evenly over its positions.
func AURC(conf []float64, correct []bool) float64 {
	n := len(conf)
	if n == 0 {
		return 0
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return conf[idx[a]] > conf[idx[b]] })
	var sum, errs float64
	for i := 0; i < n; {
		j := i
		var ge float64
		for j < n && conf[idx[j]] == conf[idx[i]] {
			if !correct[idx[j]] {
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

// summarize computes the metrics of records.
func summarize(rs []record) Metrics {
	m := Metrics{Examples: len(rs)}
	n := len(rs)
	if n == 0 {
		return m
	}
	conf := make([]float64, n)
	correct := make([]bool, n)
	var answered, answeredWrong, agreeN, agree, stanceN int
	for i, r := range rs {
		conf[i], correct[i] = r.conf, r.correct
		y := 0.0
		if r.correct {
			y = 1
			m.Accuracy++
		}
		m.Brier += (r.conf - y) * (r.conf - y)
		c := math.Min(math.Max(r.conf, 1e-12), 1-1e-12)
		m.NLL -= y*math.Log(c) + (1-y)*math.Log(1-c)
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
			answered++
			if !r.correct {
				answeredWrong++
			}
		case Clarify:
			m.ClarifyRate++
		case Abstain:
			m.AbstainRate++
		}
		if r.agree >= 0 {
			agreeN++
			agree += int(r.agree)
		}
		if r.hasStance {
			stanceN++
			m.SycophancyShift += r.shift
		}
	}
	fn := float64(n)
	for _, p := range []*float64{&m.Accuracy, &m.Brier, &m.NLL, &m.Coverage, &m.MeanSetSize,
		&m.SingletonRate, &m.AnswerRate, &m.ClarifyRate, &m.AbstainRate} {
		*p /= fn
	}
	if answered > 0 {
		m.SelectiveError = float64(answeredWrong) / float64(answered)
	}
	if agreeN > 0 {
		m.WordingAgreement = float64(agree) / float64(agreeN)
	}
	if stanceN > 0 {
		m.SycophancyShift /= float64(stanceN)
	}
	m.ECE, m.MCE = calibrationErrors(ReliabilityBins(conf, correct), n)
	m.AdaptiveECE = adaptiveECE(conf, correct)
	m.AUROC = AUROC(conf, correct)
	m.AURC = AURC(conf, correct)
	return m
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
	Map               []float64
	Alpha             float64
	Quantile          float64
	Lambda            float64
	Risk              float64
}
