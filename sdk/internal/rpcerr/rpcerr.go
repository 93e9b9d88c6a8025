// Package rpcerr defines the SDK's error kinds and maps them to gRPC status
// codes and back. The root sdk package re-exports the kinds; they live here
// so the host-side packages can map errors without importing the plugin
// runtime.
package rpcerr

import (
	"context"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The error kinds. Plugins wrap them (fmt.Errorf("zone %q: %w", z,
// ErrNotFound)); callers test them with errors.Is on either side of the wire.
var (
	ErrNotFound           = errors.New("not found")
	ErrAlreadyExists      = errors.New("already exists")
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrInvalidConfig      = errors.New("invalid config")
	ErrRetryable          = errors.New("temporarily unavailable")
	ErrUnimplemented      = errors.New("not implemented")
	ErrPermissionDenied   = errors.New("permission denied")
	ErrDeadline           = errors.New("deadline exceeded")
	ErrFailedPrecondition = errors.New("failed precondition")
)

// Domain and Reason tag an INVALID_ARGUMENT status that is about the
// plugin's configuration, so that ErrInvalidConfig survives the trip even
// though it shares a code with ErrInvalidArgument.
const (
	Domain              = "berth.plugin"
	ReasonInvalidConfig = "INVALID_CONFIG"
)

// kinds is ordered: the first kind an error matches decides its code.
var kinds = []struct {
	err  error
	code codes.Code
}{
	{ErrInvalidConfig, codes.InvalidArgument},
	{ErrNotFound, codes.NotFound},
	{ErrAlreadyExists, codes.AlreadyExists},
	{ErrInvalidArgument, codes.InvalidArgument},
	{ErrRetryable, codes.Unavailable},
	{ErrUnimplemented, codes.Unimplemented},
	{ErrPermissionDenied, codes.PermissionDenied},
	{ErrDeadline, codes.DeadlineExceeded},
	{ErrFailedPrecondition, codes.FailedPrecondition},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
	{context.Canceled, codes.Canceled},
}

// ToStatus turns err into a gRPC status error carrying err's full message.
// Errors that match none of the kinds keep the code of a gRPC status they
// wrap, or become UNKNOWN.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	for _, k := range kinds {
		if !errors.Is(err, k.err) {
			continue
		}
		st := status.New(k.code, err.Error())
		if k.err == ErrInvalidConfig {
			if withInfo, derr := st.WithDetails(&errdetails.ErrorInfo{Domain: Domain, Reason: ReasonInvalidConfig}); derr == nil {
				st = withInfo
			}
		}
		return st.Err()
	}
	if st, ok := status.FromError(err); ok {
		// Keep the code of a status the error wraps, but the whole message:
		// the wrapping context is what makes it useful to the operator.
		return status.New(st.Code(), err.Error()).Err()
	}
	return status.New(codes.Unknown, err.Error()).Err()
}

// Error is an error received over gRPC. Its message is the peer's message
// unchanged, and errors.Is matches the kind its code maps to.
type Error struct {
	kind error
	st   *status.Status
}

// Error returns the peer's message.
func (e *Error) Error() string { return e.st.Message() }

// Is reports whether target is the error's kind. ErrDeadline also matches
// context.DeadlineExceeded, so code written against contexts keeps working.
func (e *Error) Is(target error) bool {
	if e.kind == nil {
		return false
	}
	if target == e.kind {
		return true
	}
	return e.kind == ErrDeadline && target == context.DeadlineExceeded
}

// GRPCStatus lets the error travel on as the same status (a host that
// forwards it, status.Code).
func (e *Error) GRPCStatus() *status.Status { return e.st }

// Code returns the gRPC code the error arrived with.
func (e *Error) Code() codes.Code { return e.st.Code() }

// FromStatus turns a gRPC status error back into an *Error whose kind
// matches the code. Errors that are not gRPC statuses are returned as they
// are.
func FromStatus(err error) error {
	if err == nil {
		return nil
	}
	var already *Error
	if errors.As(err, &already) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	var kind error
	switch st.Code() {
	case codes.OK:
		return nil
	case codes.NotFound:
		kind = ErrNotFound
	case codes.AlreadyExists:
		kind = ErrAlreadyExists
	case codes.InvalidArgument:
		kind = ErrInvalidArgument
		for _, d := range st.Details() {
			if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == Domain && info.GetReason() == ReasonInvalidConfig {
				kind = ErrInvalidConfig
			}
		}
	case codes.Unavailable, codes.ResourceExhausted, codes.Aborted:
		kind = ErrRetryable
	case codes.Unimplemented:
		kind = ErrUnimplemented
	case codes.PermissionDenied, codes.Unauthenticated:
		kind = ErrPermissionDenied
	case codes.DeadlineExceeded:
		kind = ErrDeadline
	case codes.FailedPrecondition:
		kind = ErrFailedPrecondition
	case codes.Canceled:
		kind = context.Canceled
	}
	return &Error{kind: kind, st: st}
}
