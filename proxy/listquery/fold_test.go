package listquery

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// reference is the meaning of ~: a substring match after lower-casing both.
func reference(text, value string) bool {
	return strings.Contains(strings.ToLower(text), strings.ToLower(value))
}

func TestFoldNeedle(t *testing.T) {
	for _, c := range []struct {
		text, value string
		want        bool
	}{
		{"nginx:1.27", "NGINX", true},
		{"NGINX:1.27", "nginx", true},
		{"web-7f9c", "", true},
		{"", "", true},
		{"", "a", false},
		{"ab", "abc", false},
		// Overlapping partial matches: the search must fall back to the
		// border, not restart past it.
		{"aaab", "aab", true},
		{"abababc", "ababc", true},
		{"abacabab", "abab", true},
		{"abacaba", "abab", false},
		{strings.Repeat("a", 1000), strings.Repeat("a", 999) + "b", false},
		{strings.Repeat("a", 1000) + "B", strings.Repeat("a", 999) + "b", true},
		// Non-ASCII text is lower-cased with strings.ToLower first.
		{"Größe-ÄRGER", "ärger", true},
		{"Größe-ÄRGER", "ÄRGER", true},
		{"ÉCOLE", "école", true},
		// The Kelvin sign lower-cases to ASCII k.
		{"\u212Aube", "kube", true},
		{"kube", "\u212Aube", true},
		{"plain ascii", "ß", false},
	} {
		n := newFoldNeedle(c.value)
		if got := n.in(foldText(c.text)); got != c.want {
			t.Errorf("%.40q ~ %.40q = %v; want %v", c.text, c.value, got, c.want)
		}
		if ref := reference(c.text, c.value); ref != c.want {
			t.Errorf("test case %.40q ~ %.40q disagrees with the reference (%v)", c.text, c.value, ref)
		}
	}
}

// TestFoldNeedleAgreesWithReference compares the search with the
// reference on many random texts over a small alphabet, where partial
// matches overlap often.
func TestFoldNeedleAgreesWithReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "A", "b", "B", "ä", "Ä", "-"}
	word := func(max int) string {
		var b strings.Builder
		for range r.IntN(max + 1) {
			b.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		return b.String()
	}
	for range 20000 {
		text, value := word(24), word(5)
		n := newFoldNeedle(value)
		if got, want := n.in(foldText(text)), reference(text, value); got != want {
			t.Fatalf("%q ~ %q = %v; want %v", text, value, got, want)
		}
	}
}

// naiveContainsFold is the search ~ used before, kept here as the
// benchmark's baseline: it tries the needle at every offset.
func naiveContainsFold(s, lowerNeedle string) bool {
	n := len(lowerNeedle)
outer:
	for i := 0; i+n <= len(s); i++ {
		for j := 0; j < n; j++ {
			if lowerASCII(s[i+j]) != lowerNeedle[j] {
				continue outer
			}
		}
		return true
	}
	return false
}

// BenchmarkFuzzyHostile is the cost attack of issue 15.3: a 1 000-byte ~
// value that almost matches everywhere in a 100 KB field. "naive" is the
// search used before, "linear" the one used now.
func BenchmarkFuzzyHostile(b *testing.B) {
	text := strings.Repeat("a", 100<<10)
	value := strings.Repeat("a", 999) + "b"
	b.Run("naive", func(b *testing.B) {
		b.SetBytes(int64(len(text)))
		for b.Loop() {
			if naiveContainsFold(text, value) {
				b.Fatal("matched")
			}
		}
	})
	b.Run("linear", func(b *testing.B) {
		n := newFoldNeedle(value)
		b.SetBytes(int64(len(text)))
		for b.Loop() {
			if n.in(foldText(text)) {
				b.Fatal("matched")
			}
		}
	})
}
