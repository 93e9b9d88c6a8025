package listquery

import (
	"strings"
	"unicode/utf8"
)

// foldNeedle is the value of a ~ term, prepared for a case-insensitive
// substring search whose time is linear in the text: Knuth–Morris–Pratt
// over the lower-cased bytes.
//
// The search it replaces compared the needle at every offset of the text,
// O(len(text)·len(needle)): a 1 000-byte needle such as "aaa…ab" against a
// 100 KB value of "aaa…" took about a hundred million byte comparisons per
// value, and a list of such objects kept a core busy for half a minute.
// KMP never moves backwards in the text, so one value costs at most
// 2·len(text) comparisons whatever the needle.
//
// The meaning is unchanged: text contains the needle after both are
// lower-cased with strings.ToLower (ASCII text is folded byte by byte, in
// place, which is the same thing for ASCII).
type foldNeedle struct {
	s string // strings.ToLower of the value as written
	// border[i] is the length of the longest proper prefix of s[:i+1]
	// that is also its suffix: where the search resumes after a mismatch
	// at s[i+1].
	border []int
}

// newFoldNeedle lower-cases v and computes its border table, once per
// term, in O(len(v)).
func newFoldNeedle(v string) foldNeedle {
	s := strings.ToLower(v)
	border := make([]int, len(s))
	k := 0
	for i := 1; i < len(s); i++ {
		for k > 0 && s[i] != s[k] {
			k = border[k-1]
		}
		if s[i] == s[k] {
			k++
		}
		border[i] = k
	}
	return foldNeedle{s: s, border: border}
}

// foldedText is a value's text ready for foldNeedle.in: ASCII text as is
// (in folds it byte by byte), anything else lower-cased once, so a term
// with several alternatives lowers a value only once.
type foldedText struct {
	s     string
	ascii bool
}

func foldText(s string) foldedText {
	if isASCII(s) {
		return foldedText{s: s, ascii: true}
	}
	return foldedText{s: strings.ToLower(s)}
}

// in reports whether t contains the needle, ignoring case, in
// O(len(t.s)) after the needle's own O(len(needle)) preparation.
func (n *foldNeedle) in(t foldedText) bool {
	m := len(n.s)
	if m == 0 {
		return true
	}
	if m > len(t.s) {
		return false
	}
	k := 0 // bytes of the needle matched so far
	for i := 0; i < len(t.s); i++ {
		c := t.s[i]
		if t.ascii {
			c = lowerASCII(c)
		}
		for k > 0 && c != n.s[k] {
			k = n.border[k-1]
		}
		if c == n.s[k] {
			k++
			if k == m {
				return true
			}
		}
	}
	return false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
