package proxy

import (
	"encoding/json"
	"testing"

	"github.com/valyala/fasthttp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
)

func TestWriteRefusal(t *testing.T) {
	for _, tc := range []struct {
		code    int
		message string
		reason  metav1.StatusReason
		warning bool
	}{
		{404, `cluster "x" not found, or you are not a member of it`, metav1.StatusReasonNotFound, true},
		{401, `your credential has expired: download a new kubeconfig`, metav1.StatusReasonUnauthorized, true},
		// A message a Warning cannot carry still gets its Status.
		{404, "line one\nline two", metav1.StatusReasonNotFound, false},
	} {
		var ctx fasthttp.RequestCtx
		ctx.Response.Header.Set("X-Left-Over", "1")
		WriteRefusal(&ctx, tc.code, tc.message)
		var st metav1.Status
		if err := json.Unmarshal(ctx.Response.Body(), &st); err != nil {
			t.Fatalf("%d: body %s: %v", tc.code, ctx.Response.Body(), err)
		}
		if ctx.Response.StatusCode() != tc.code || st.Kind != "Status" || st.Reason != tc.reason || st.Message != tc.message || int(st.Code) != tc.code {
			t.Errorf("%d: %d %+v", tc.code, ctx.Response.StatusCode(), st)
		}
		raw := ctx.Response.Header.PeekAll("Warning")
		if !tc.warning {
			if len(raw) != 0 {
				t.Errorf("%q: warning %q", tc.message, raw)
			}
			continue
		}
		if len(raw) != 1 {
			t.Fatalf("%q: %d Warning headers", tc.message, len(raw))
		}
		// Parsed as client-go parses it for kubectl.
		ws, errs := utilnet.ParseWarningHeaders([]string{string(raw[0])})
		if len(errs) != 0 || len(ws) != 1 || ws[0].Code != 299 || ws[0].Text != tc.message {
			t.Errorf("%q: warning %q parsed as %+v %v", tc.message, raw[0], ws, errs)
		}
		if len(ctx.Response.Header.Peek("X-Left-Over")) != 0 {
			t.Error("headers set before the refusal were kept")
		}
	}
}
