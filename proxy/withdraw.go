package proxy

import (
	"encoding/json"
	"fmt"
	"mime"

	"github.com/valyala/fasthttp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
)

// When Berth ends a watch because its caller lost access, it says so the
// way the API server ends a watch it cannot continue (an expired resource
// version): with a last ERROR event carrying a Status, so client-go
// returns an error that names the reason instead of seeing a quiet end
// it would take for a normal one.

// refusal is why a stream of id's was withdrawn: id.Refusal's answer, or
// a plain 403.
func refusal(id Identity, cluster string) (int, string) {
	if id.Refusal != nil {
		if code, msg := id.Refusal(); code != 0 {
			return code, msg
		}
	}
	return fasthttp.StatusForbidden, fmt.Sprintf("access to cluster %q was withdrawn", cluster)
}

// newStatus is the Status object the proxy answers code and message with.
func newStatus(code int, message string) metav1.Status {
	st := metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure,
		Message:  message,
		Reason:   reasons[code],
		Code:     int32(code),
	}
	if st.Reason == "" {
		st.Reason = metav1.StatusReasonUnknown
	}
	return st
}

// errorEvent is the JSON watch event that ends a stream with code and
// message, newline-terminated as the API server frames JSON watch events.
func errorEvent(code int, message string) []byte {
	st, _ := json.Marshal(newStatus(code, message))
	ev, _ := json.Marshal(metav1.WatchEvent{Type: string(watch.Error), Object: runtime.RawExtension{Raw: st}})
	return append(ev, '\n')
}

// isJSONWatch reports whether resp is a watch stream of JSON events, the
// only kind a JSON event may be added to; a protobuf stream just ends.
func isJSONWatch(resp *fasthttp.Response) bool {
	if resp.StatusCode() != fasthttp.StatusOK {
		return false
	}
	mt, _, err := mime.ParseMediaType(string(resp.Header.ContentType()))
	return err == nil && mt == "application/json"
}
