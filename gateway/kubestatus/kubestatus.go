// Package kubestatus reads the answers of the calls Berth makes to a
// cluster's API server on its own account (join tokens, node operations,
// break-glass kubeconfigs, the node history): a refusal comes back as the
// apimachinery *StatusError decoded from the cluster's own metav1.Status,
// so callers decide with apierrors.IsForbidden, IsNotFound, IsConflict and
// the like, never by matching text; and Fault turns such an error into
// Berth's error vocabulary (package fault) in one place.
package kubestatus

import (
	"encoding/json"
	"errors"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/berthgw/berth/gateway/fault"
)

// Error returns nil for a success (2xx) and otherwise the
// *apierrors.StatusError the answer carries: the cluster's own Status when
// body is one (its code filled in from the HTTP status when it left it
// out), else a generic one for the status code, as client-go makes for an
// answer that is not a Status. method is the request's, which decides the
// reason of some codes (a POST's 409 is AlreadyExists).
func Error(method string, code int, body []byte) error {
	if code >= 200 && code <= 299 {
		return nil
	}
	var st metav1.Status
	if json.Unmarshal(body, &st) == nil && st.Kind == "Status" && st.Status != metav1.StatusSuccess {
		if st.Code == 0 {
			st.Code = int32(code)
		}
		return apierrors.FromObject(&st)
	}
	return apierrors.NewGenericServerResponse(code, method, schema.GroupResource{}, "", "", 0, false)
}

// Fault classifies err, from a call Berth made to a cluster to do what
// (for example "PATCH /api/v1/nodes/edge-1"), for the caller of Berth's
// API. A refusal the cluster explained keeps its meaning and the
// cluster's message (a Status never carries a credential): its RBAC's 403
// is Forbidden, 404 NotFound, 409 Conflict, 429 TooMany (with the delay it
// suggests); its timeouts are GatewayTimeout and its 503 Unavailable.
// Anything else it answered, its 401 to Berth's own credential included,
// is BadGateway. An error already classified (the cluster is not
// registered) is returned as it is; any other failure (the cluster could
// not be reached) is BadGateway, its detail kept for the log only. The
// StatusError stays in the chain, so apierrors.IsNotFound and the like
// still answer for the result.
func Fault(err error, what string) error {
	if err == nil {
		return nil
	}
	var fe *fault.Error
	if errors.As(err, &fe) {
		return err
	}
	var se apierrors.APIStatus
	if !errors.As(err, &se) {
		return fault.Wrap(fault.BadGateway, err, "%s: the cluster could not be reached", what)
	}
	st := se.Status()
	f := fault.Wrap(Kind(err), err, "%s: the cluster answered %d: %s", what, st.Code, st.Message)
	if secs, ok := apierrors.SuggestsClientDelay(err); ok && f.Kind == fault.TooMany {
		f.Retry(time.Duration(secs) * time.Second)
	}
	return f
}

// Kind is the fault kind of a cluster's refusal err (see Fault).
func Kind(err error) fault.Kind {
	switch {
	case apierrors.IsForbidden(err):
		return fault.Forbidden
	case apierrors.IsNotFound(err):
		return fault.NotFound
	case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err):
		return fault.Conflict
	case apierrors.IsTooManyRequests(err):
		return fault.TooMany
	case apierrors.IsTimeout(err), apierrors.IsServerTimeout(err):
		return fault.GatewayTimeout
	case apierrors.IsServiceUnavailable(err):
		return fault.Unavailable
	}
	return fault.BadGateway
}
