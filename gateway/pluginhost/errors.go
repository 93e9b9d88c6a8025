package pluginhost

import (
	"errors"
	"fmt"

	"github.com/valyala/fasthttp"

	"github.com/berthgw/berth/gateway/httpapi"
	"github.com/berthgw/berth/sdk"
)

// Errors the host returns, testable with errors.Is.
var (
	// ErrUnavailable: the plugin cannot take calls now (it is restarting,
	// degraded, failed or stopped, or it died during the call). Every
	// *UnavailableError matches it.
	ErrUnavailable = errors.New("plugin unavailable")
	// ErrUnknownPlugin: no plugin of that name is configured.
	ErrUnknownPlugin = errors.New("no such plugin")
	// ErrNoCapability: the plugin does not offer the capability asked for.
	ErrNoCapability = errors.New("plugin does not offer the capability")
)

// UnavailableError says why a call could not reach its plugin.
type UnavailableError struct {
	Plugin string
	// State is the plugin's state when the call gave up.
	State State
	// Cause is the underlying error, if any (the call's transport error
	// when the plugin died during it).
	Cause error
}

func (e *UnavailableError) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("plugin %q is unavailable (%s): %v", e.Plugin, e.State, e.Cause)
	}
	return fmt.Sprintf("plugin %q is unavailable (%s)", e.Plugin, e.State)
}

// Is makes errors.Is(err, ErrUnavailable) hold.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// Unwrap returns the cause.
func (e *UnavailableError) Unwrap() error { return e.Cause }

// HTTPError maps an error from a plugin call to the API's error shape, so
// handlers answer it consistently. Unavailable plugins, deadlines and
// retryable provider failures are 503: billing and other calls that gate
// access fail closed rather than letting a request through unchecked.
// Only the 4xx kinds carry the plugin's message (it explains the caller's
// mistake); 5xx messages are generic, because the plugin's text may name
// internal detail.
func HTTPError(err error) *httpapi.Error {
	var he *httpapi.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &he):
		return he
	case errors.Is(err, ErrUnavailable), errors.Is(err, sdk.ErrDeadline), errors.Is(err, sdk.ErrRetryable):
		return httpapi.Errorf(fasthttp.StatusServiceUnavailable, httpapi.CodeUnavailable,
			"a plugin this request needs is unavailable; try again later")
	case errors.Is(err, ErrUnknownPlugin), errors.Is(err, ErrNoCapability):
		return httpapi.Errorf(fasthttp.StatusServiceUnavailable, httpapi.CodeUnavailable,
			"no plugin is configured for this")
	case errors.Is(err, sdk.ErrNotFound):
		return httpapi.Errorf(fasthttp.StatusNotFound, httpapi.CodeNotFound, "%s", err.Error())
	case errors.Is(err, sdk.ErrInvalidArgument):
		return httpapi.BadRequest("%s", err.Error())
	case errors.Is(err, sdk.ErrAlreadyExists), errors.Is(err, sdk.ErrFailedPrecondition):
		return httpapi.Errorf(fasthttp.StatusConflict, httpapi.CodeConflict, "%s", err.Error())
	case errors.Is(err, sdk.ErrPermissionDenied):
		return httpapi.Errorf(fasthttp.StatusForbidden, httpapi.CodeForbidden, "%s", err.Error())
	default:
		return httpapi.Errorf(fasthttp.StatusInternalServerError, httpapi.CodeInternal, "internal error")
	}
}
