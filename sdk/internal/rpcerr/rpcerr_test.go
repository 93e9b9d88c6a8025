package rpcerr

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		err  error
		code codes.Code
		kind error
	}{
		{"not found", fmt.Errorf("zone %q: %w", "example.com.", ErrNotFound), codes.NotFound, ErrNotFound},
		{"already exists", fmt.Errorf("cluster a: %w", ErrAlreadyExists), codes.AlreadyExists, ErrAlreadyExists},
		{"invalid argument", fmt.Errorf("ttl: %w", ErrInvalidArgument), codes.InvalidArgument, ErrInvalidArgument},
		{"invalid config", fmt.Errorf("%w: unknown field \"pth\"", ErrInvalidConfig), codes.InvalidArgument, ErrInvalidConfig},
		{"retryable", fmt.Errorf("smtp: %w", ErrRetryable), codes.Unavailable, ErrRetryable},
		{"unimplemented", ErrUnimplemented, codes.Unimplemented, ErrUnimplemented},
		{"permission denied", fmt.Errorf("webhook signature: %w", ErrPermissionDenied), codes.PermissionDenied, ErrPermissionDenied},
		{"deadline", fmt.Errorf("provider: %w", ErrDeadline), codes.DeadlineExceeded, ErrDeadline},
		{"context deadline", fmt.Errorf("call: %w", context.DeadlineExceeded), codes.DeadlineExceeded, ErrDeadline},
		{"failed precondition", fmt.Errorf("cluster not ready: %w", ErrFailedPrecondition), codes.FailedPrecondition, ErrFailedPrecondition},
		{"canceled", context.Canceled, codes.Canceled, context.Canceled},
		{"plain", errors.New("boom"), codes.Unknown, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wire := ToStatus(tt.err)
			if got := status.Code(wire); got != tt.code {
				t.Fatalf("code = %v, want %v", got, tt.code)
			}
			back := FromStatus(wire)
			if back.Error() != tt.err.Error() {
				t.Errorf("message = %q, want %q", back.Error(), tt.err.Error())
			}
			if tt.kind != nil && !errors.Is(back, tt.kind) {
				t.Errorf("errors.Is(%v, %v) = false", back, tt.kind)
			}
			for _, k := range kinds {
				if k.err != tt.kind && !(tt.kind == ErrDeadline && k.err == context.DeadlineExceeded) && errors.Is(back, k.err) {
					t.Errorf("errors.Is(%v, %v) = true, want false", back, k.err)
				}
			}
			// A second trip (a host forwarding the error) changes nothing.
			again := FromStatus(ToStatus(back))
			if again.Error() != tt.err.Error() || status.Code(ToStatus(again)) != tt.code {
				t.Errorf("second trip: %v (%v)", again, status.Code(ToStatus(again)))
			}
		})
	}
}

func TestDeadlineMatchesContext(t *testing.T) {
	back := FromStatus(status.Error(codes.DeadlineExceeded, "slow"))
	if !errors.Is(back, context.DeadlineExceeded) || !errors.Is(back, ErrDeadline) {
		t.Fatalf("deadline error %v does not match both kinds", back)
	}
}

func TestNonStatusPassesThrough(t *testing.T) {
	local := errors.New("local")
	if got := FromStatus(local); got != local {
		t.Fatalf("FromStatus(local) = %v", got)
	}
	if FromStatus(nil) != nil || ToStatus(nil) != nil {
		t.Fatal("nil must stay nil")
	}
}
