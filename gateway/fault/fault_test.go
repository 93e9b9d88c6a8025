package fault

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestKindOf(t *testing.T) {
	cause := errors.New("dial tcp 10.0.0.1:6443: connection refused")
	for _, tc := range []struct {
		name string
		err  error
		want Kind
	}{
		{"plain error", cause, Internal},
		{"fault", New(NotFound, "cluster %q not found", "a"), NotFound},
		{"wrapped fault", fmt.Errorf("context: %w", New(Conflict, "taken")), Conflict},
		{"fault with cause", Wrap(Unavailable, cause, "cluster unreachable"), Unavailable},
	} {
		if got := KindOf(tc.err); got != tc.want {
			t.Errorf("%s: KindOf = %v, want %v", tc.name, got, tc.want)
		}
		if !Is(tc.err, tc.want) && tc.want != Internal {
			t.Errorf("%s: Is(%v) = false", tc.name, tc.want)
		}
	}
}

func TestErrorKeepsCauseOutOfMessage(t *testing.T) {
	cause := errors.New("secret detail")
	e := Wrap(Unavailable, cause, "cluster %q is unreachable", "prod")
	if e.Message != `cluster "prod" is unreachable` {
		t.Errorf("Message = %q", e.Message)
	}
	if !errors.Is(e, cause) {
		t.Error("cause not in the chain")
	}
	if got := e.Error(); got != `cluster "prod" is unreachable: secret detail` {
		t.Errorf("Error() = %q", got)
	}
	if r := New(TooMany, "slow down").Retry(10 * time.Second); r.RetryAfter != 10*time.Second {
		t.Errorf("RetryAfter = %v", r.RetryAfter)
	}
	if s := Kind(99).String(); s != "Kind(99)" {
		t.Errorf("unknown kind prints %q", s)
	}
}
