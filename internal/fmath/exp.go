// Package fmath holds the two elementary functions plumb evaluates often enough to own: the
// exponential and the logarithm. Scoring a question of sampled completions takes tens of
// thousands of exponentials (each token's distribution re-normalised at a temperature), a
// question of options dozens of logarithms (an entropy per wording and per left-out wording),
// and fitting millions of both.
package fmath

import "math"

// Exp returns e^x within 2 ulp of math.Exp (tested on millions of points). In plumb's softmax
// loops it is faster than math.Exp on the machine BENCHMARKS.md measures (the pooled NLL of a
// fit 22 % faster); in isolation the two are as fast. It is Tang's table-driven method (ACM TOMS 15(2),
// 1989) with 256 entries: x = (256n + j)·ln2/256 + r with |r| ≤ ln2/512, so
// e^x = 2^n · 2^(j/256) · e^r, with e^r − 1 by its Taylor polynomial of degree 5 (the first
// term left out is below 1e-20). ln 2 is split in two (the fdlibm constants) so that the
// reduction is exact where it matters. Arguments whose result is not a normal float (and NaN
// and the infinities) go to math.Exp.
func Exp(x float64) float64 {
	if !(x > -708 && x < 709) {
		return math.Exp(x)
	}
	// Round x·256/ln2 to the nearest integer by adding and removing 1.5·2^52.
	kf := x*invLn2N + shifter
	k := int64(math.Float64bits(kf)) // low bits hold k (two's complement within the mantissa)
	kf -= shifter
	r := (x - kf*ln2HiN) - kf*ln2LoN
	// e^r − 1 by its Taylor polynomial in halves (Estrin), a shorter chain than Horner's.
	r2 := r * r
	p := r + r2*(1.0/2+r*(1.0/6)) + r2*r2*((1.0/24+r*(1.0/120))+r2*(1.0/720))
	t := table[k&(tableSize-1)]
	n := int64(int32(k)) >> tableBits
	return (t + t*p) * math.Float64frombits(uint64(1023+n)<<52)
}

const (
	tableBits = 8
	tableSize = 1 << tableBits
	invLn2N   = tableSize / math.Ln2
	shifter   = 0x1.8p52
	// ln 2 / 256 in two parts: the high part has 21 trailing zero bits, so k·ln2HiN is exact
	// for |k| < 2^21 (here |k| < 2^18).
	ln2HiN = 6.93147180369123816490e-01 / tableSize
	ln2LoN = 1.90821492927058770002e-10 / tableSize
)

// table holds 2^(j/256), j = 0..255.
var table = func() (t [tableSize]float64) {
	for j := range t {
		t[j] = math.Exp2(float64(j) / tableSize)
	}
	return t
}()
