package kubestatus

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berthgw/berth/gateway/fault"
)

// status is a Status as a kube-apiserver writes it.
func status(code int32, reason metav1.StatusReason, msg string) []byte {
	b, err := json.Marshal(metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Message: msg, Reason: reason, Code: code,
	})
	if err != nil {
		panic(err)
	}
	return b
}

func TestErrorAndFault(t *testing.T) {
	forbidden := `nodes "edge-1" is forbidden: User "berth:vic" cannot patch resource "nodes" in API group "" at the cluster scope`
	tooMany, _ := json.Marshal(metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusFailure,
		Message: "Cannot evict pod as it would violate the pod's disruption budget.", Reason: metav1.StatusReasonTooManyRequests,
		Code: 429, Details: &metav1.StatusDetails{RetryAfterSeconds: 7},
	})
	for _, tc := range []struct {
		name   string
		method string
		code   int
		body   []byte
		is     func(error) bool
		kind   fault.Kind
		msg    string // in the fault's message
	}{
		{"RBAC refusal", "PATCH", 403, status(403, metav1.StatusReasonForbidden, forbidden), apierrors.IsForbidden, fault.Forbidden, forbidden},
		{"no such object", "GET", 404, status(404, metav1.StatusReasonNotFound, `nodes "nope" not found`), apierrors.IsNotFound, fault.NotFound, `nodes "nope" not found`},
		{"exists", "POST", 409, status(409, metav1.StatusReasonAlreadyExists, `secrets "bootstrap-token-abc" already exists`), apierrors.IsAlreadyExists, fault.Conflict, "already exists"},
		{"precondition", "DELETE", 409, status(409, metav1.StatusReasonConflict, "Precondition failed: UID in precondition: 1, UID in object meta: 2"), apierrors.IsConflict, fault.Conflict, "Precondition failed"},
		{"budget", "POST", 429, tooMany, apierrors.IsTooManyRequests, fault.TooMany, "disruption budget"},
		{"Berth's credential refused", "GET", 401, status(401, metav1.StatusReasonUnauthorized, "Unauthorized"), apierrors.IsUnauthorized, fault.BadGateway, "Unauthorized"},
		{"invalid", "POST", 422, status(422, metav1.StatusReasonInvalid, `Secret "x" is invalid`), apierrors.IsInvalid, fault.BadGateway, "is invalid"},
		{"server timeout", "GET", 504, status(504, metav1.StatusReasonTimeout, "request timed out"), apierrors.IsTimeout, fault.GatewayTimeout, "timed out"},
		{"unavailable", "GET", 503, status(503, metav1.StatusReasonServiceUnavailable, "apiserver is shutting down"), apierrors.IsServiceUnavailable, fault.Unavailable, "shutting down"},
		{"code left out of the Status", "GET", 403, []byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","message":"no","reason":"Forbidden"}`), apierrors.IsForbidden, fault.Forbidden, "answered 403: no"},
		{"not a Status", "GET", 403, []byte("<html>denied</html>"), apierrors.IsForbidden, fault.Forbidden, "answered 403"},
		{"empty 500", "POST", 500, nil, apierrors.IsInternalError, fault.BadGateway, "answered 500"},
		{"a POST's bare 409", "POST", 409, nil, apierrors.IsAlreadyExists, fault.Conflict, "answered 409"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Error(tc.method, tc.code, tc.body)
			var se *apierrors.StatusError
			if !errors.As(err, &se) || !tc.is(err) {
				t.Fatalf("Error = %#v", err)
			}
			f := Fault(err, tc.method+" /x")
			var fe *fault.Error
			if !errors.As(f, &fe) || fe.Kind != tc.kind || !strings.HasPrefix(fe.Message, tc.method+" /x: ") || !strings.Contains(fe.Message, tc.msg) {
				t.Fatalf("Fault = %#v, want kind %v with %q", f, tc.kind, tc.msg)
			}
			if !tc.is(f) {
				t.Error("the StatusError is not in the fault's chain")
			}
		})
	}
	if err := Error("POST", 201, []byte(`{"kind":"Secret"}`)); err != nil {
		t.Errorf("201: %v", err)
	}
	var fe *fault.Error
	if f := Fault(Error("POST", 429, tooMany), "evict"); !errors.As(f, &fe) || fe.RetryAfter != 7*time.Second {
		t.Errorf("429 keeps no Retry-After: %#v", f)
	}
}

// What is not a cluster's answer: an error already classified passes
// through; a failure to reach the cluster is BadGateway and its detail
// stays out of the message.
func TestFaultOfOtherErrors(t *testing.T) {
	notFound := fault.New(fault.NotFound, "cluster not found")
	if got := Fault(notFound, "GET /api/v1/nodes"); got != error(notFound) {
		t.Errorf("classified error became %v", got)
	}
	dial := errors.New("dial tcp 10.0.0.7:6443: connection refused")
	f := Fault(dial, "GET /api/v1/nodes")
	var fe *fault.Error
	if !errors.As(f, &fe) || fe.Kind != fault.BadGateway || strings.Contains(fe.Message, "10.0.0.7") || !errors.Is(f, dial) {
		t.Errorf("unreachable: %#v", f)
	}
	if Fault(nil, "x") != nil {
		t.Error("Fault(nil) is not nil")
	}
}

// A refused access review, as the registry's permission probe reads it.
func TestClusterError(t *testing.T) {
	for _, tc := range []struct {
		code      int
		body      string
		forbidden bool
		msg       string
	}{
		{403, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"no way","reason":"Forbidden","code":403}`, true, "no way"},
		{403, `not json`, true, ""},
		{500, `{"kind":"Status","status":"Failure","message":"boom"}`, false, "boom"},
	} {
		err := Error("POST", tc.code, []byte(tc.body))
		if apierrors.IsForbidden(err) != tc.forbidden || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%d %s: %v", tc.code, tc.body, err)
		}
	}
}
