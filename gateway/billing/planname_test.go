package billing

import (
	"regexp"
	"strings"
	"testing"
)

// validPlanName is the loop that replaced this regexp; it must accept and
// refuse exactly what the regexp did.
var planNameRE = regexp.MustCompile(`^[\p{L}\p{N}][\p{L}\p{N} ._-]{0,62}$`)

func TestValidPlanNameMatchesItsRegexp(t *testing.T) {
	for _, name := range []string{
		"", " ", "a", "Z", "7", "Pro", "Pro plan", "pro-2025.v1_b", "Über Plan", "企业版", "план 3", "٣ نجوم",
		"Ⅻ", "½ price", // other numbers (Nl, No)
		"-pro", ".pro", "_pro", " pro", "pro!", "pro\n", "pro\tplan", "pro/plan", "pro\x00",
		"pro\xff", "\xffpro", "\uFFFD", "pro\u200b", "e\u0301", // invalid UTF-8, replacement, zero-width space, combining mark
		strings.Repeat("a", 62), strings.Repeat("a", 63), strings.Repeat("a", 64),
		strings.Repeat("é", 63), strings.Repeat("é", 64), "a" + strings.Repeat(" ", 62), "a" + strings.Repeat(" ", 63),
	} {
		if got, want := validPlanName(name), planNameRE.MatchString(name); got != want {
			t.Errorf("validPlanName(%q) = %v, the regexp says %v", name, got, want)
		}
	}
}
