package sdk

import "github.com/berthgw/berth/sdk/internal/rpcerr"

// Error kinds. A plugin returns them, usually wrapped with context
// (fmt.Errorf("zone %q: %w", zone, sdk.ErrNotFound)); the SDK sends them as
// gRPC status codes with the full message, and the host's client turns the
// codes back into errors for which errors.Is(err, sdk.ErrNotFound) holds and
// whose Error() is the plugin's message unchanged.
//
//	ErrNotFound            NOT_FOUND
//	ErrAlreadyExists       ALREADY_EXISTS
//	ErrInvalidArgument     INVALID_ARGUMENT
//	ErrInvalidConfig       INVALID_ARGUMENT, tagged with ErrorInfo reason INVALID_CONFIG
//	ErrRetryable           UNAVAILABLE (also RESOURCE_EXHAUSTED, ABORTED on the way back)
//	ErrUnimplemented       UNIMPLEMENTED
//	ErrPermissionDenied    PERMISSION_DENIED (also UNAUTHENTICATED on the way back)
//	ErrDeadline            DEADLINE_EXCEEDED (also matches context.DeadlineExceeded)
//	ErrFailedPrecondition  FAILED_PRECONDITION
//
// context.Canceled travels as CANCELED. Any other error arrives as UNKNOWN
// with its message and matches none of the kinds.
var (
	// ErrNotFound: the named thing (cluster, zone, operation, key) does not exist.
	ErrNotFound = rpcerr.ErrNotFound
	// ErrAlreadyExists: creating something that exists.
	ErrAlreadyExists = rpcerr.ErrAlreadyExists
	// ErrInvalidArgument: the request is malformed; retrying it cannot help.
	ErrInvalidArgument = rpcerr.ErrInvalidArgument
	// ErrInvalidConfig: the plugin's configuration is wrong; the message names the field.
	ErrInvalidConfig = rpcerr.ErrInvalidConfig
	// ErrRetryable: a temporary failure (the provider is down); the same call may succeed later.
	ErrRetryable = rpcerr.ErrRetryable
	// ErrUnimplemented: the plugin does not support this call or capability.
	ErrUnimplemented = rpcerr.ErrUnimplemented
	// ErrPermissionDenied: the provider refused the plugin's credentials, or a webhook failed verification.
	ErrPermissionDenied = rpcerr.ErrPermissionDenied
	// ErrDeadline: the call ran out of time.
	ErrDeadline = rpcerr.ErrDeadline
	// ErrFailedPrecondition: the system is not in a state for the call (cluster not ready, plugin not configured).
	ErrFailedPrecondition = rpcerr.ErrFailedPrecondition
)
