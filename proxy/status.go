package proxy

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// reasons maps the statuses the proxy itself produces to Kubernetes
// StatusReasons, so kubectl prints "Error from server (Forbidden): …".
var reasons = map[int]metav1.StatusReason{
	fasthttp.StatusBadRequest:            metav1.StatusReasonBadRequest,
	fasthttp.StatusUnauthorized:          metav1.StatusReasonUnauthorized,
	fasthttp.StatusForbidden:             metav1.StatusReasonForbidden,
	fasthttp.StatusNotFound:              metav1.StatusReasonNotFound,
	fasthttp.StatusRequestTimeout:        metav1.StatusReasonTimeout,
	fasthttp.StatusMethodNotAllowed:      metav1.StatusReasonMethodNotAllowed,
	fasthttp.StatusRequestEntityTooLarge: metav1.StatusReasonRequestEntityTooLarge,
	fasthttp.StatusTooManyRequests:       metav1.StatusReasonTooManyRequests,
	fasthttp.StatusInternalServerError:   metav1.StatusReasonInternalError,
	fasthttp.StatusServiceUnavailable:    metav1.StatusReasonServiceUnavailable,
	fasthttp.StatusGatewayTimeout:        metav1.StatusReasonTimeout,
}

// WriteStatus answers with a Kubernetes Status object, the error format
// kubectl and client-go understand.
func WriteStatus(ctx *fasthttp.RequestCtx, code int, message string) {
	body, _ := json.Marshal(newStatus(code, message))
	ctx.Response.Reset()
	ctx.SetStatusCode(code)
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
	setTenantHeaders(&ctx.Response.Header)
}

// WriteTooManyRequests answers 429 with Retry-After in whole seconds
// (at least 1), as the Kubernetes API server itself does.
func WriteTooManyRequests(ctx *fasthttp.RequestCtx, retryAfter time.Duration) {
	secs := retryAfterSeconds(retryAfter)
	WriteStatus(ctx, fasthttp.StatusTooManyRequests, fmt.Sprintf("rate limit exceeded, retry after %d seconds", secs))
	ctx.Response.Header.Set("Retry-After", strconv.Itoa(secs))
}

// retryAfterSeconds rounds d up to whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int((d+time.Second-1)/time.Second))
}
