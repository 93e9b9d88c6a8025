package pluginhost

import (
	"context"
	"errors"
	"fmt"

	"github.com/berthgw/berth/gateway/fault"
	"github.com/berthgw/berth/sdk"
)

// The host's own refusals. Callers outside the package do not test them:
// every error a client of the host returns carries a fault kind (see
// classify), and callers test that with fault.Is.
var (
	// errUnavailable: the plugin cannot take calls now (it is restarting,
	// degraded, failed or stopped, or it died during the call). Every
	// *unavailableError matches it.
	errUnavailable = errors.New("plugin unavailable")
	// errUnknownPlugin: no plugin of that name is configured.
	errUnknownPlugin = errors.New("no such plugin")
	// errNoCapability: the plugin does not offer the capability asked for.
	errNoCapability = errors.New("plugin does not offer the capability")
)

// unavailableError says why a call could not reach its plugin.
type unavailableError struct {
	Plugin string
	// State is the plugin's state when the call gave up.
	State State
	// Cause is the underlying error, if any (the call's transport error
	// when the plugin died during it).
	Cause error
}

func (e *unavailableError) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("plugin %q is unavailable (%s): %v", e.Plugin, e.State, e.Cause)
	}
	return fmt.Sprintf("plugin %q is unavailable (%s)", e.Plugin, e.State)
}

// Is makes errors.Is(err, errUnavailable) hold.
func (e *unavailableError) Is(target error) bool { return target == errUnavailable }

// Unwrap returns the cause.
func (e *unavailableError) Unwrap() error { return e.Cause }

// classified is an error from the host or a plugin together with its
// fault kind. Its text is the error's own, unchanged (operation records,
// the notification queue and logs keep it); errors.Is sees the SDK's error
// kinds through it, and errors.As finds the *fault.Error that httpapi
// answers with.
type classified struct {
	err   error
	fault *fault.Error
}

func (c *classified) Error() string   { return c.err.Error() }
func (c *classified) Unwrap() []error { return []error{c.err, c.fault} }

// classify gives an error from a plugin call its fault kind: the one place
// where the SDK's error kinds become the gateway's. Unavailable plugins and
// retryable provider failures are Unavailable (503) and deadlines
// GatewayTimeout (504), so billing and other calls that gate access fail
// closed. Only the kinds that explain the caller's mistake (not found,
// invalid, conflict) show the plugin's message; the others get a generic
// one, because the plugin's text may name internal detail.
func classify(err error) error {
	var fe *fault.Error
	if err == nil || errors.As(err, &fe) {
		return err
	}
	kind, msg := fault.Internal, ""
	switch {
	case errors.Is(err, errUnavailable), errors.Is(err, sdk.ErrRetryable):
		kind, msg = fault.Unavailable, "a plugin this request needs is unavailable; try again later"
	case errors.Is(err, sdk.ErrDeadline), errors.Is(err, context.DeadlineExceeded):
		kind, msg = fault.GatewayTimeout, "a plugin this request needs did not answer in time"
	case errors.Is(err, errUnknownPlugin):
		kind, msg = fault.NotFound, "no such plugin is configured"
	case errors.Is(err, sdk.ErrNotFound):
		kind, msg = fault.NotFound, err.Error()
	case errors.Is(err, errNoCapability):
		kind, msg = fault.Invalid, "the plugin does not offer the capability"
	case errors.Is(err, sdk.ErrInvalidArgument), errors.Is(err, sdk.ErrInvalidConfig):
		kind, msg = fault.Invalid, err.Error()
	case errors.Is(err, sdk.ErrAlreadyExists), errors.Is(err, sdk.ErrFailedPrecondition):
		kind, msg = fault.Conflict, err.Error()
	case errors.Is(err, sdk.ErrPermissionDenied):
		kind, msg = fault.BadGateway, "a plugin this request needs was refused by its provider"
	case errors.Is(err, sdk.ErrUnimplemented):
		kind, msg = fault.BadGateway, "the plugin does not support this request"
	default:
		return err
	}
	fe = fault.New(kind, "%s", msg)
	if kind == fault.Unavailable || kind == fault.GatewayTimeout || kind == fault.BadGateway {
		// A failure on the gateway's side: the cause goes to the log.
		fe.Cause = err
	}
	return &classified{err: err, fault: fe}
}

// missing is the error of a call to a capability the plugin does not offer.
func missing(plugin string, c sdk.Capability) error {
	return &classified{
		err:   fmt.Errorf("plugin %q: %s: %w", plugin, c, errNoCapability),
		fault: fault.New(fault.Invalid, "the plugin does not offer the %s capability", c),
	}
}
