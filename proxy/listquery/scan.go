package listquery

import (
	"strings"

	"github.com/tidwall/gjson"
)

// A minimal scanner for JSON that gjson.Valid has accepted, so it needs no
// error handling. It exists for one reason: reaching a chunk's items array
// with gjson (Get, then ForEach) walks the whole array twice, once to cut
// out the array and once per element; this walks it once.

// skipWS returns the index of the first non-whitespace byte at or after i.
func skipWS(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t') {
		i++
	}
	return i
}

// stringEnd returns the index just past the string starting at s[i] == '"'.
func stringEnd(s string, i int) int {
	i++
	for {
		j := strings.IndexByte(s[i:], '"')
		if j < 0 {
			return len(s)
		}
		i += j
		// The quote ends the string unless an odd number of backslashes
		// escapes it. The opening quote bounds the count.
		k := i - 1
		for s[k] == '\\' {
			k--
		}
		if (i-1-k)%2 == 0 {
			return i + 1
		}
		i++
	}
}

// valueEnd returns the index just past the value starting at s[i].
func valueEnd(s string, i int) int {
	switch s[i] {
	case '"':
		return stringEnd(s, i)
	case '{', '[':
		depth := 0
		for i < len(s) {
			switch s[i] {
			case '"':
				i = stringEnd(s, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default: // number, true, false, null
		for i < len(s) {
			switch s[i] {
			case ',', '}', ']', ' ', '\n', '\r', '\t':
				return i
			}
			i++
		}
		return i
	}
}

// memberStart returns the index where the value of the top-level member
// named key starts in the object s, or -1. Like gjson, it finds the first
// member of that name.
func memberStart(s, key string) int {
	i := skipWS(s, 0)
	if i >= len(s) || s[i] != '{' {
		return -1
	}
	i = skipWS(s, i+1)
	for i < len(s) && s[i] == '"' {
		end := stringEnd(s, i)
		name := s[i+1 : end-1]
		if strings.IndexByte(name, '\\') >= 0 {
			name = gjson.Parse(s[i:end]).Str
		}
		i = skipWS(s, end)
		i = skipWS(s, i+1) // past ':'
		if name == key {
			return i
		}
		i = skipWS(s, valueEnd(s, i))
		if i < len(s) && s[i] == ',' {
			i = skipWS(s, i+1)
		}
	}
	return -1
}

// arrayElements calls fn with the raw text of each element of the array
// starting at s[i] == '[', stopping early if fn returns false.
func arrayElements(s string, i int, fn func(raw string) bool) {
	i = skipWS(s, i+1)
	for i < len(s) && s[i] != ']' {
		end := valueEnd(s, i)
		if !fn(s[i:end]) {
			return
		}
		i = skipWS(s, end)
		if i < len(s) && s[i] == ',' {
			i = skipWS(s, i+1)
		}
	}
}
