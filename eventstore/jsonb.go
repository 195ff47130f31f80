package eventstore

import (
	"fmt"
	"unicode/utf8"
)

// Limits of PostgreSQL's numeric type, which jsonb stores every JSON number
// as (PostgreSQL 15's numeric.c): at most 131072 digits before the decimal
// point and 16383 after it, and an exponent whose magnitude is below
// INT_MAX/2.
const (
	pgNumericMaxIntDigits = 131072
	pgNumericMaxScale     = 16383
	pgNumericMaxExponent  = 1<<30 - 1 // INT_MAX / 2
)

// jsonbCheck checks valid JSON data for what PostgreSQL's jsonb refuses
// although the JSON grammar allows it, and measures it as jsonb prints it.
// It returns "" and the printed length, or a description of the first
// problem. data must be valid JSON (json.Valid).
//
// jsonb refuses: invalid UTF-8 (including UTF-8 encoded surrogates) in
// strings, the escape \u0000, a \u escape of a surrogate not forming a
// pair, and numbers numeric cannot hold. It prints data with ", " and ": "
// between elements, no other whitespace, strings decoded and escaped again
// (only '"', '\\' and control characters), and numbers in plain notation
// with every digit (1e5 is 100000, 1.0e-3 is 0.0010). Duplicate object keys
// are kept once; the length counts them all, so it is an upper bound.
func jsonbCheck(data []byte) (size int, problem string) {
	for i := 0; i < len(data); {
		c := data[i]
		switch {
		case c == '"':
			n, end, p := jsonbString(data, i)
			if p != "" {
				return 0, p
			}
			size += n
			i = end
		case c == '-' || (c >= '0' && c <= '9'):
			n, end, p := jsonbNumber(data, i)
			if p != "" {
				return 0, p
			}
			size += n
			i = end
		case c == ',' || c == ':':
			size += 2 // ", " and ": "
			i++
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		default: // brackets and the letters of true, false, null
			size++
			i++
		}
	}
	return size, ""
}

// jsonbString measures the string starting at data[start] (a quote) as
// jsonb prints it and returns the index after its closing quote.
func jsonbString(data []byte, start int) (size, end int, problem string) {
	size = 2 // the quotes
	i := start + 1
	for i < len(data) {
		c := data[i]
		switch {
		case c == '"':
			return size, i + 1, ""
		case c == '\\':
			esc := data[i+1]
			if esc != 'u' {
				i += 2
				if esc == '/' {
					size++ // printed as a plain '/'
				} else {
					size += 2 // \" \\ \b \f \n \r \t stay two bytes
				}
				continue
			}
			r := hex4(data[i+2 : i+6])
			i += 6
			switch {
			case r == 0:
				return 0, 0, fmt.Sprintf(`the escape \u0000 at byte %d (jsonb cannot store a NUL character)`, i-6)
			case r >= 0xdc00 && r <= 0xdfff:
				return 0, 0, fmt.Sprintf(`the escape \u%04x at byte %d is a low surrogate without a high surrogate before it`, r, i-6)
			case r >= 0xd800 && r <= 0xdbff:
				if i+6 > len(data) || data[i] != '\\' || data[i+1] != 'u' {
					return 0, 0, fmt.Sprintf(`the escape \u%04x at byte %d is a high surrogate without a low surrogate after it`, r, i-6)
				}
				lo := hex4(data[i+2 : i+6])
				if lo < 0xdc00 || lo > 0xdfff {
					return 0, 0, fmt.Sprintf(`the escape \u%04x at byte %d is a high surrogate without a low surrogate after it`, r, i-6)
				}
				i += 6
				size += 4 // a code point beyond U+FFFF in UTF-8
			default:
				size += printedRuneLen(rune(r))
			}
		case c < utf8.RuneSelf:
			size++
			i++
		default:
			r, n := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && n <= 1 {
				return 0, 0, fmt.Sprintf("invalid UTF-8 in a string at byte %d", i)
			}
			size += n
			i += n
		}
	}
	return size, i, "" // unreachable for valid JSON
}

// printedRuneLen is the length of r as jsonb prints it inside a string.
func printedRuneLen(r rune) int {
	switch {
	case r == '"' || r == '\\' || r == '\b' || r == '\f' || r == '\n' || r == '\r' || r == '\t':
		return 2
	case r < 0x20:
		return 6 // \u00XX
	}
	return utf8.RuneLen(r)
}

// hex4 decodes four hex digits (valid JSON guarantees them).
func hex4(b []byte) int {
	v := 0
	for _, c := range b {
		v <<= 4
		switch {
		case c >= '0' && c <= '9':
			v |= int(c - '0')
		case c >= 'a' && c <= 'f':
			v |= int(c-'a') + 10
		case c >= 'A' && c <= 'F':
			v |= int(c-'A') + 10
		}
	}
	return v
}

// jsonbNumber checks the number starting at data[start] against numeric's
// limits, measures it as numeric prints it, and returns the index after it.
func jsonbNumber(data []byte, start int) (size, end int, problem string) {
	i := start
	neg := data[i] == '-'
	if neg {
		i++
	}
	intStart := i
	for i < len(data) && isDigit(data[i]) {
		i++
	}
	intDigits := data[intStart:i]
	var fracDigits []byte
	if i < len(data) && data[i] == '.' {
		i++
		fs := i
		for i < len(data) && isDigit(data[i]) {
			i++
		}
		fracDigits = data[fs:i]
	}
	var exp int64
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		expNeg := false
		if data[i] == '+' || data[i] == '-' {
			expNeg = data[i] == '-'
			i++
		}
		for i < len(data) && isDigit(data[i]) {
			if exp <= pgNumericMaxExponent {
				exp = exp*10 + int64(data[i]-'0')
			}
			i++
		}
		if exp >= pgNumericMaxExponent {
			return 0, 0, outOfRange(data[start:i], start, "its exponent is beyond what PostgreSQL reads")
		}
		if expNeg {
			exp = -exp
		}
	}
	num := data[start:i]

	// Digits after the decimal point as numeric keeps them (its scale).
	scale := int64(len(fracDigits)) - exp
	if scale < 0 {
		scale = 0
	}
	if scale > pgNumericMaxScale {
		return 0, 0, outOfRange(num, start, fmt.Sprintf("it has %d digits after the decimal point, more than %d", scale, pgNumericMaxScale))
	}
	// The power of ten of the first non-zero digit.
	first := -1
	for k, d := range intDigits {
		if d != '0' {
			first = k
			break
		}
	}
	var lead int64
	nonZero := true
	switch {
	case first >= 0:
		lead = int64(len(intDigits)-1-first) + exp
	default:
		nonZero = false
		for k, d := range fracDigits {
			if d != '0' {
				lead = int64(-1-k) + exp
				nonZero = true
				break
			}
		}
	}
	intLen := int64(1) // "0"
	if nonZero && lead >= 0 {
		// numeric keeps digits in groups of four; the group of the first
		// digit must be at most 32767, so lead <= 131071.
		if lead >= pgNumericMaxIntDigits {
			return 0, 0, outOfRange(num, start, fmt.Sprintf("it has %d digits before the decimal point, more than %d", lead+1, pgNumericMaxIntDigits))
		}
		intLen = lead + 1
	}
	size64 := intLen
	if scale > 0 {
		size64 += 1 + scale
	}
	if neg && nonZero {
		size64++
	}
	return int(size64), i, ""
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func outOfRange(num []byte, at int, why string) string {
	s := string(num)
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return fmt.Sprintf("the number %s at byte %d is beyond the range of PostgreSQL's numeric: %s", s, at, why)
}

// stringSize bounds the length of a valid UTF-8 string without NUL bytes
// as a JSON string, quotes included, in both encodings a store may return
// it in: jsonb's text (which escapes only '"', '\\' and control
// characters) and encoding/json's (which also escapes <, > and & as \u003c
// and U+2028 and U+2029).
func stringSize(s string) int {
	n := 2
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t':
			n += 2
		case c < 0x20 || c == '<' || c == '>' || c == '&':
			n += 6
		case c == 0xe2 && i+2 < len(s) && s[i+1] == 0x80 && (s[i+2] == 0xa8 || s[i+2] == 0xa9):
			n += 6 // U+2028, U+2029
			i += 2
		default:
			n++
		}
	}
	return n
}

// metadataSize bounds the length of m as a JSON object in both encodings
// (see stringSize), with jsonb's ", " and ": " between elements: 0 for nil
// metadata, which the store keeps as no metadata at all.
func metadataSize(m Metadata) int {
	if m == nil {
		return 0
	}
	n := 2 // {}
	first := true
	for k, v := range m {
		if !first {
			n += 2 // ", "
		}
		first = false
		n += stringSize(k) + 2 + stringSize(v) // key ": " value
	}
	return n
}
