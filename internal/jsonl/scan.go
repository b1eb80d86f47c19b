package jsonl

import (
	"encoding/binary"
	"math"
	"math/bits"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// scanner reads one JSON value from b. Its methods set bad and return zero values when the
// input is not JSON or is outside the subset the decoder takes; callers check bad at the end.
type scanner struct {
	b   []byte
	i   int
	bad bool
	buf []byte // unescaped string contents
}

func (s *scanner) reset(b []byte) {
	s.b, s.i, s.bad = b, 0, false
}

// peek skips white space and returns the next byte (0 at the end).
func (s *scanner) peek() byte {
	if s.i < len(s.b) && s.b[s.i] > ' ' {
		return s.b[s.i] // no white space: the usual case
	}
	for s.i < len(s.b) {
		switch c := s.b[s.i]; c {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return c
		}
	}
	return 0
}

// end reports whether only white space is left.
func (s *scanner) end() bool { return s.peek() == 0 && s.i == len(s.b) }

// open consumes the opening c of an object or array and reports whether a first member
// follows (false, with the closing byte consumed, when it is empty).
func (s *scanner) open(c, closing byte) bool {
	if s.bad || s.peek() != c {
		s.bad = true
		return false
	}
	s.i++
	if s.peek() == closing {
		s.i++
		return false
	}
	return true
}

// next consumes what follows a member: a comma (true: another member) or the closing byte.
func (s *scanner) next(closing byte) bool {
	if s.bad {
		return false
	}
	switch s.peek() {
	case ',':
		s.i++
		return true
	case closing:
		s.i++
		return false
	}
	s.bad = true
	return false
}

// key reads an object key and its colon.
func (s *scanner) key() []byte {
	if s.bad || s.peek() != '"' {
		s.bad = true
		return nil
	}
	// Up to the next quote: a key with an escape or a control character in it matches none
	// of the caller's names and is refused there.
	b := s.b
	start := s.i + 1
	j := plainRun(b, start)
	for j < len(b) && b[j] != '"' {
		j++
	}
	if j+1 < len(b) && b[j] == '"' && b[j+1] == ':' {
		s.i = j + 2 // no white space: the usual case
		return b[start:j]
	}
	if j == len(b) || b[j] != '"' {
		s.bad = true
		return nil
	}
	s.i = j + 1
	if s.peek() != ':' {
		s.bad = true
		return nil
	}
	s.i++
	return b[start:j]
}

// lit consumes x, after white space, if it comes next.
func (s *scanner) lit(x string) bool {
	s.peek()
	if len(s.b)-s.i >= len(x) && string(s.b[s.i:s.i+len(x)]) == x {
		s.i += len(x)
		return true
	}
	return false
}

// char consumes c, after white space, if it comes next.
func (s *scanner) char(c byte) bool {
	if s.peek() == c {
		s.i++
		return true
	}
	return false
}

// stringNumberShape names the two fields of an object stringNumber reads: keys k1 and k2
// (quoted), and the text around the string when there is no white space, head = {k1:" and
// mid = ",k2:.
type stringNumberShape struct {
	k1, k2    string
	head, mid word
}

func newStringNumberShape(k1, k2 string) stringNumberShape {
	return stringNumberShape{k1: k1, k2: k2, head: newWord("{" + k1 + `:"`), mid: newWord(`",` + k2 + ":")}
}

// word is a text of 9 to 16 bytes compared as two little-endian words.
type word struct {
	s             string
	lo, hi, himsk uint64
}

func newWord(s string) word {
	if len(s) <= 8 || len(s) > 16 {
		panic("jsonl: word of " + strconv.Itoa(len(s)) + " bytes")
	}
	var buf [16]byte
	copy(buf[:], s)
	return word{s: s, lo: binary.LittleEndian.Uint64(buf[:8]), hi: binary.LittleEndian.Uint64(buf[8:]),
		himsk: 1<<(8*(len(s)-8)) - 1}
}

// at16 reports whether the 16 bytes b begin with w.
func (w *word) at16(b []byte) bool {
	_ = b[15]
	return binary.LittleEndian.Uint64(b) == w.lo && binary.LittleEndian.Uint64(b[8:])&w.himsk == w.hi
}

// stringNumber reads an object of exactly two fields in the order given, a string of printable
// ASCII without escapes and a number: {k1:"…",k2:…}, the shape of options and top_logprobs.
// When the object is anything else it consumes nothing and returns ok false, and the caller
// reads it field by field.
func (s *scanner) stringNumber(f *stringNumberShape) (str []byte, num float64, ok bool) {
	if s.bad {
		return nil, 0, false
	}
	at := s.i
	// Compact, as plumb writes it: {k1:"…",k2:-D.F} with no white space, read by index: the
	// text from the brace to the string and from the string to the number compared as words,
	// the number by shortFraction.
	if b, i := s.b, s.i; len(b)-i >= 32 && f.head.at16(b[i:i+16]) {
		j := i + len(f.head.s)
		for j < len(b) && printable(b[j]) {
			j++
		}
		if len(b)-j >= 16 && f.mid.at16(b[j:j+16]) {
			k := j + len(f.mid.s)
			d := k
			if b[d] == '-' {
				d++
			}
			if d+1 < len(b) && b[d]-'0' <= 9 && b[d+1] == '.' {
				if v, end, ok := shortFraction(b, d); ok && end < len(b) && b[end] == '}' {
					if d > k {
						v = -v
					}
					s.i = end + 1
					return b[i+len(f.head.s) : j], v, true
				}
			}
			s.i = k
			if c := s.peek(); c == '-' || c >= '0' && c <= '9' {
				num = s.float(64)
				if !s.bad && s.i < len(b) && b[s.i] == '}' {
					s.i++
					return b[i+len(f.head.s) : j], num, true
				}
			}
		}
		s.i, s.bad = at, false
	}
	// The same with white space between the tokens.
	if s.char('{') && s.lit(f.k1) && s.char(':') && s.peek() == '"' {
		b := s.b
		j := s.i + 1
		for j < len(b) && printable(b[j]) {
			j++
		}
		if j < len(b) && b[j] == '"' {
			str = b[s.i+1 : j]
			s.i = j + 1
			if s.char(',') && s.lit(f.k2) && s.char(':') {
				if c := s.peek(); c == '-' || c >= '0' && c <= '9' {
					num = s.float(64)
					if !s.bad && s.char('}') {
						return str, num, true
					}
				}
			}
		}
	}
	s.i, s.bad = at, false // read again by the general path, which finds any fault itself
	return nil, 0, false
}

// printable reports whether c may stand as it is in a string stringNumber reads: printable
// ASCII but for '"' and '\\' (and '!', which saves a comparison; the field-by-field path
// takes it).
func printable(c byte) bool { return c > '"' && c != '\\' && c < 0x7f }

// once marks a field as seen; a repeated field (protojson refuses them) is bad.
func (s *scanner) once(seen *uint32, bit uint32) bool {
	if *seen&bit != 0 {
		s.bad = true
		return false
	}
	*seen |= bit
	return !s.bad
}

// str reads a string and returns its contents, valid until the next call. Invalid UTF-8,
// control characters and unpaired surrogates are bad.
func (s *scanner) str() []byte {
	if s.bad || s.peek() != '"' {
		s.bad = true
		return nil
	}
	start := s.i + 1
	j := plainRun(s.b, start)
	ascii := true
	for j < len(s.b) {
		c := s.b[j]
		if c == '"' || c == '\\' || c < 0x20 {
			break
		}
		if c >= 0x80 {
			ascii = false
		}
		j++
	}
	if j == len(s.b) || s.b[j] < 0x20 {
		s.bad = true
		return nil
	}
	if s.b[j] == '"' {
		s.i = j + 1
		if !ascii && !utf8.Valid(s.b[start:j]) {
			s.bad = true
			return nil
		}
		return s.b[start:j]
	}
	return s.escaped(start, j)
}

// plainRun returns the index of the first byte from b[j] on that may end or escape a string
// or need UTF-8 checking ('"', '\\', a control character, a byte ≥ 0x80), or a nearby index
// before it; it reads eight bytes at a time where it can. The byte test is the classic
// has-zero-byte one (Mycroft), whose lowest flagged byte is exact.
func plainRun(b []byte, j int) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for j+8 <= len(b) {
		v := binary.LittleEndian.Uint64(b[j:])
		q, bs := v^'"'*ones, v^'\\'*ones
		stop := ((q-ones)&^q | (bs-ones)&^bs | (v - 0x20*ones) | v) & highs
		if stop != 0 {
			return j + bits.TrailingZeros64(stop)/8
		}
		j += 8
	}
	return j
}

// escaped decodes a string with escapes from start; the first backslash is at j.
func (s *scanner) escaped(start, j int) []byte {
	s.buf = append(s.buf[:0], s.b[start:j]...)
	for j < len(s.b) {
		c := s.b[j]
		switch {
		case c == '"':
			s.i = j + 1
			if !utf8.Valid(s.buf) {
				s.bad = true
				return nil
			}
			return s.buf
		case c < 0x20:
			s.bad = true
			return nil
		case c != '\\':
			s.buf = append(s.buf, c)
			j++
			continue
		}
		if j+1 >= len(s.b) {
			break
		}
		j += 2
		switch letter := s.b[j-1]; {
		case unescaped[letter] != 0:
			s.buf = append(s.buf, unescaped[letter])
		case letter == 'u':
			r, ok := s.hex4(j)
			j += 4
			if ok && utf16.IsSurrogate(r) {
				// Only a high surrogate followed by an escaped low one makes a rune.
				var lo rune
				if ok = j+6 <= len(s.b) && s.b[j] == '\\' && s.b[j+1] == 'u'; ok {
					lo, ok = s.hex4(j + 2)
					j += 6
				}
				if r = utf16.DecodeRune(r, lo); !ok || r == utf8.RuneError {
					s.bad = true
					return nil
				}
			}
			if !ok {
				s.bad = true
				return nil
			}
			s.buf = utf8.AppendRune(s.buf, r)
		default:
			s.bad = true
			return nil
		}
	}
	s.bad = true
	return nil
}

func (s *scanner) hex4(j int) (rune, bool) {
	if j+4 > len(s.b) {
		return 0, false
	}
	var r rune
	for _, c := range s.b[j : j+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// number reads a number written as JSON's grammar allows,
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?. It returns its text, whether it is an
// integer (no fraction or exponent) and its magnitude as m·10^e with ok true when m, all its
// digits, fits in a uint64 and |e| < 1000.
func (s *scanner) number() (text []byte, integer bool, m uint64, e int, ok bool) {
	if s.bad {
		return
	}
	s.peek()
	b, start := s.b, s.i
	j := start
	if j < len(b) && b[j] == '-' {
		j++
	}
	ok = true
	first := j
	if j+1 < len(b) && b[j] >= '0' && b[j] <= '9' && (b[j+1] < '0' || b[j+1] > '9') {
		m, j = uint64(b[j]-'0'), j+1 // one digit before the point, as in most logprobs
	} else {
		j, m, ok = digits(b, j, m, ok)
	}
	if n := j - first; n == 0 || n > 1 && b[first] == '0' {
		s.bad = true
		return
	}
	integer = true
	if j < len(b) && b[j] == '.' {
		j++
		integer = false
		frac := j
		j, m, ok = digits(b, j, m, ok)
		if j == frac {
			s.bad = true
			return
		}
		e = frac - j
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		integer = false
		sign := 1
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			if b[j] == '-' {
				sign = -1
			}
			j++
		}
		exp := j
		x := 0
		for ; j < len(b) && b[j] >= '0' && b[j] <= '9'; j++ {
			if x < 10000 {
				x = x*10 + int(b[j]-'0')
			}
		}
		if j == exp {
			s.bad = true
			return
		}
		e += sign * x
	}
	if e < -999 || e > 999 {
		ok = false
	}
	s.i = j
	return b[start:j], integer, m, e, ok
}

// digits reads the digits from b[j], accumulating them into the mantissa m; ok turns false
// when m overflows. Where eight bytes can be loaded it reads them at once: the run of digits
// they begin with is found from a per-byte test and combined with three multiplications.
func digits(b []byte, j int, m uint64, ok bool) (int, uint64, bool) {
	for j+8 <= len(b) {
		v := binary.LittleEndian.Uint64(b[j:])
		n := 8
		if nd := nonDigits(v); nd != 0 {
			n = bits.TrailingZeros64(nd) / 8
		}
		if n == 0 {
			break
		}
		hi, lo := bits.Mul64(m, pow10u[n])
		var carry uint64
		m, carry = bits.Add64(lo, eightDigits(v, n), 0)
		if hi|carry != 0 {
			ok = false
		}
		j += n
		if n < 8 {
			return j, m, ok
		}
	}
	for ; j < len(b) && b[j] >= '0' && b[j] <= '9'; j++ {
		d := uint64(b[j] - '0')
		if m > (math.MaxUint64-d)/10 {
			ok = false
		}
		m = m*10 + d
	}
	return j, m, ok
}

var pow10u = [...]uint64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8}

// exact10 holds the powers of ten a float64 represents exactly.
var exact10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// float reads a JSON number as a float of bitSize bits; out of range is bad (protojson
// refuses it too). A float64 whose digits make an integer m below 2^53, with a power of ten
// within 10^±22 — the logprobs LLM APIs print — is m·10^e or m/10^−e computed in floating
// point, which is correctly rounded because m and the power are exact (Clinger 1990);
// anything else goes to strconv.ParseFloat.
func (s *scanner) float(bitSize int) float64 {
	if bitSize == 64 {
		if f, ok := s.logprob(); ok {
			return f
		}
	}
	t, _, m, e, ok := s.number()
	if s.bad {
		return 0
	}
	if ok && bitSize == 64 && m < 1<<53 && e >= -22 && e <= 22 {
		f := float64(m)
		if e < 0 {
			f /= exact10[-e]
		} else {
			f *= exact10[e]
		}
		if t[0] == '-' {
			f = -f
		}
		return f
	}
	// The string shares t's bytes only for the call: ParseFloat keeps it only in an error,
	// which is dropped here.
	f, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(t), len(t)), bitSize)
	if err != nil {
		s.bad = true
		return 0
	}
	return f
}

// logprob reads the usual shape of a logprob, -?D.D… with one digit before the point, at most
// 15 digits in all and no exponent: m/10^n exactly as float reads it, with less work. For
// anything else it consumes nothing and returns false.
func (s *scanner) logprob() (float64, bool) {
	if s.bad {
		return 0, false
	}
	s.peek()
	b, i := s.b, s.i
	neg := i < len(b) && b[i] == '-'
	if neg {
		i++
	}
	if i+2 >= len(b) || b[i] < '0' || b[i] > '9' || b[i+1] != '.' {
		return 0, false
	}
	if f, j, ok := shortFraction(b, i); ok {
		if neg {
			f = -f
		}
		s.i = j
		return f, true
	}
	j, m, ok := digits(b, i+2, uint64(b[i]-'0'), true)
	n := j - (i + 2)
	if !ok || n == 0 || n > 14 || j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		return 0, false
	}
	f := float64(m) / exact10[n]
	if neg {
		f = -f
	}
	s.i = j
	return f, true
}

// shortFraction reads D.F at b[i] (a digit and a point checked by the caller) where F is one
// to fourteen digits and no exponent follows: the common logprob, read without a loop from one
// or two eight-byte words. It returns D.F (m/10^n, as logprob computes it) and the index after
// it, or ok false for anything else.
func shortFraction(b []byte, i int) (f float64, j int, ok bool) {
	if len(b)-i < 11 {
		return 0, 0, false
	}
	v := binary.LittleEndian.Uint64(b[i+2:])
	var m uint64
	var n int
	var next byte // the byte after the digits
	if nd := nonDigits(v); nd != 0 {
		n = bits.TrailingZeros64(nd) / 8
		m = uint64(b[i]-'0')*pow10u[n] + eightDigits(v, n)
		next = byte(v >> (8 * n))
	} else {
		// Eight digits and more in the next word (the first six of them at most).
		if len(b)-i < 18 {
			return 0, 0, false
		}
		w := binary.LittleEndian.Uint64(b[i+10:])
		nd := nonDigits(w)
		k := bits.TrailingZeros64(nd) / 8 // 8 when nd is 0
		if k > 6 {
			return 0, 0, false
		}
		n = 8 + k
		m = (uint64(b[i]-'0')*1e8+eightDigits(v, 8))*pow10u[k] + eightDigits(w, k)
		next = byte(w >> (8 * k))
	}
	if n == 0 || next|0x20 == 'e' {
		return 0, 0, false
	}
	return float64(m) / exact10[n], i + 2 + n, true
}

// nonDigits has a non-zero byte for every byte of v that is not an ASCII digit: a digit's high
// nibble is 3 and adding 6 keeps it 3. (A carry out of a byte ≥ 0xFA can only spoil the bytes
// after it, past the first non-digit.)
func nonDigits(v uint64) uint64 {
	return (v&0xF0F0F0F0F0F0F0F0 ^ 0x3030303030303030) | ((v+0x0606060606060606)&0xF0F0F0F0F0F0F0F0 ^ 0x3030303030303030)
}

// eightDigits returns the number the first n bytes of v (little-endian; all digits) write,
// 0 for n = 0: the digits moved to the top bytes, as the last digits of an eight-digit number
// with leading zeros, then combined in pairs, quads and the whole.
func eightDigits(v uint64, n int) uint64 {
	v = (v - 0x3030303030303030) << (8 * (8 - n)) // 0 when n is 0 (Go's shifts)
	v = (v*10 + v>>8) & 0x00FF00FF00FF00FF
	v = (v*100 + v>>16) & 0x0000FFFF0000FFFF
	return (v*10000 + v>>32) & 0xFFFFFFFF
}

// int reads a JSON integer (digits only) of bitSize bits.
func (s *scanner) int(bitSize int) int64 {
	t, integer, _, _, _ := s.number()
	if s.bad || !integer {
		s.bad = true
		return 0
	}
	n, err := strconv.ParseInt(unsafe.String(unsafe.SliceData(t), len(t)), 10, bitSize)
	if err != nil {
		s.bad = true
		return 0
	}
	return n
}

// int64 reads an int64 as protojson writes it, a string of digits ("12"), or as a JSON number
// (12); other strings protojson would take ("1e1", " 12") are left to it.
func (s *scanner) int64() int64 {
	if s.peek() != '"' {
		return s.int(64)
	}
	b := s.str()
	digits := b
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 || len(digits) > 1 && digits[0] == '0' || !allDigits(digits) {
		s.bad = true
		return 0
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		s.bad = true
	}
	return n
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// enum reads an enum by name or by number; only the values names holds are taken.
func (s *scanner) enum(names map[string]int32) int32 {
	switch c := s.peek(); {
	case c == '"':
		if v, ok := names[string(s.str())]; ok && !s.bad {
			return v
		}
	case c == '-' || c >= '0' && c <= '9':
		n := int32(s.int(32))
		for _, v := range names {
			if v == n && !s.bad {
				return n
			}
		}
	}
	s.bad = true
	return 0
}
