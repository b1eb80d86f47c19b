package jsonl

import (
	"encoding/binary"
	"math"
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
	j := start
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
	j := start
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
		switch s.b[j-1] {
		case '"', '\\', '/':
			s.buf = append(s.buf, s.b[j-1])
		case 'b':
			s.buf = append(s.buf, '\b')
		case 'f':
			s.buf = append(s.buf, '\f')
		case 'n':
			s.buf = append(s.buf, '\n')
		case 'r':
			s.buf = append(s.buf, '\r')
		case 't':
			s.buf = append(s.buf, '\t')
		case 'u':
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
	j, m, ok = digits(b, j, m, ok)
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
// when m overflows. Eight digits at a time where there are eight.
func digits(b []byte, j int, m uint64, ok bool) (int, uint64, bool) {
	for j+8 <= len(b) {
		v := binary.LittleEndian.Uint64(b[j:])
		// Each byte is in '0'..'9' exactly when its high nibble is 3 and adding 6 keeps it so.
		if (v&0xF0F0F0F0F0F0F0F0)|(v+0x0606060606060606)&0xF0F0F0F0F0F0F0F0>>4 != 0x3333333333333333 {
			break
		}
		// Combine the digit bytes pairwise, then the pairs, then the quads: the first byte is
		// the most significant digit.
		v -= 0x3030303030303030
		v = (v*10 + v>>8) & 0x00FF00FF00FF00FF
		v = (v*100 + v>>16) & 0x0000FFFF0000FFFF
		v = (v*10000 + v>>32) & 0xFFFFFFFF
		if m > (math.MaxUint64-v)/1e8 {
			ok = false
		}
		m = m*1e8 + v
		j += 8
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

// exact10 holds the powers of ten a float64 represents exactly.
var exact10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// float reads a JSON number as a float of bitSize bits; out of range is bad (protojson
// refuses it too). A float64 of at most 15 digits with a power of ten within 10^±22 — the
// logprobs LLM APIs print — is m·10^e or m/10^−e computed in floating point, which is
// correctly rounded because m and the power are exact (Clinger 1990); anything else goes to
// strconv.ParseFloat.
func (s *scanner) float(bitSize int) float64 {
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
