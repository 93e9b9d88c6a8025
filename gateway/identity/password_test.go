package identity

import (
	"errors"
	"strings"
	"testing"
)

// The hash an unknown user's password is checked against must cost what a
// real one does: the same algorithm, version and parameters, and a salt
// and key of the same lengths. It is built without hashing (so that
// loading the package spends no memory); this keeps it equal to
// HashPassword's output in everything but the random bytes.
func TestDummyHashCostsAsARealHash(t *testing.T) {
	hashed, err := HashPassword("correct-horse-battery")
	if err != nil {
		t.Fatal(err)
	}
	want, got := strings.Split(hashed, "$"), strings.Split(dummyHash, "$")
	if len(got) != len(want) {
		t.Fatalf("dummy hash %q has %d parts, a real one %d", dummyHash, len(got), len(want))
	}
	for i := range 4 { // "", algorithm, version, parameters
		if got[i] != want[i] {
			t.Errorf("part %d: dummy %q, real %q", i, got[i], want[i])
		}
	}
	for i := 4; i < 6; i++ { // salt, key
		if len(got[i]) != len(want[i]) {
			t.Errorf("part %d: dummy %d characters, real %d", i, len(got[i]), len(want[i]))
		}
	}
	if err := VerifyPassword(dummyHash, "berth-timing-equaliser"); !errors.Is(err, ErrPasswordMismatch) {
		t.Errorf("verifying against the dummy hash: %v, want a mismatch after the full derivation", err)
	}
	if err := VerifyPassword(hashed, "correct-horse-battery"); err != nil {
		t.Errorf("the real hash does not verify: %v", err)
	}
}
