package fmath

import "math"

// Log returns the natural logarithm of x within 2 ulp of math.Log (tested on millions of
// points). It is the table-driven method of Tang (ACM TOMS 16(4), 1990) in the form of the
// ARM optimized-routines log: x = 2^k·z with z in [0.6875, 1.375), z in one of 256
// sub-intervals (2^−9 wide below 1, 2^−8 above) with centre c, and
//
//	log x = k·ln2 + log c + log1p(r),  r = z/c − 1 = z·(1/c) − 1 (one fused multiply-add),
//
// where |r| ≤ 2^−8, so log1p(r) = r − r²/2 + … + r⁷/7 leaves out less than 2^−59·|r|. 1/c is
// rounded to a float64 and log c is −log of that rounded value, so the reduction is exact but
// for the multiply-add's one rounding; the two sub-intervals that meet at 1 have c = 1 and
// log c = 0, so near 1 the result is r's polynomial alone, without cancellation. ln 2 is split in two (the fdlibm constants).
// Arguments that are not positive normal finite floats go to math.Log.
//
// In plumb's loops it is faster than math.Log because its dependency chain is short: a table
// load and a multiply-add replace math.Log's division, and the polynomial is evaluated in two
// halves (Estrin) rather than as one Horner chain.
func Log(x float64) float64 {
	if !(x >= 0x1p-1022 && x <= math.MaxFloat64) {
		return math.Log(x)
	}
	ix := math.Float64bits(x)
	tmp := ix - logOff
	i := (tmp >> (52 - logBits)) & (logSize - 1)
	k := float64(int64(tmp) >> 52) // arithmetic shift: the exponent of x relative to z's
	z := math.Float64frombits(ix - tmp&(0xfff<<52))
	e := &logTable[i]
	r := math.FMA(z, e.invc, -1)
	r2 := r * r
	// log1p(r) − r = r²·(−1/2 + r/3) + r⁴·((−1/4 + r/5) + r²·(−1/6 + r/7))
	p := r2*(-0.5+r*(1.0/3)) + r2*r2*((-0.25+r*0.2)+r2*(-1.0/6+r*(1.0/7)))
	hi := k*ln2Hi + e.logc
	return hi + (r + (p + k*ln2Lo))
}

const (
	logBits = 8
	logSize = 1 << logBits
	// logOff is the bit pattern of 0.6875: x's bits minus logOff put z in [0.6875, 1.375)
	// with the sub-interval in the top mantissa bits.
	logOff = 0x3fe6000000000000
	ln2Hi  = 6.93147180369123816490e-01 // 21 trailing zero bits: k·ln2Hi is exact
	ln2Lo  = 1.90821492927058770002e-10
)

// logEntry holds a sub-interval's 1/c (rounded) and −log of that rounded value.
type logEntry struct{ invc, logc float64 }

var logTable = func() (t [logSize]logEntry) {
	for i := range t {
		// The sub-interval of z: from the float logOff + i·2^44 to the next, bit patterns
		// that grow with the value across z's two binades.
		lo := math.Float64frombits(logOff + uint64(i)<<(52-logBits))
		hi := math.Float64frombits(logOff + uint64(i+1)<<(52-logBits))
		if lo == 1 || hi == 1 {
			t[i] = logEntry{invc: 1, logc: 0} // around 1: log x = log1p(z − 1), no cancellation
			continue
		}
		invc := 2 / (lo + hi)
		t[i] = logEntry{invc: invc, logc: -math.Log(invc)}
	}
	return t
}()
