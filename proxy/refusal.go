package proxy

import (
	"github.com/valyala/fasthttp"
	utilnet "k8s.io/apimachinery/pkg/util/net"
)

// WriteRefusal answers like WriteStatus and repeats the message in a
// Warning header (code 299, as the API server writes its warnings).
//
// kubectl reads discovery (/api, /apis) as raw bytes: client-go then never
// decodes the Status, and for a 401 or 404 it prints a fixed text instead
// ("the server could not find the requested resource", "the server has
// asked for the client to provide credentials"). It prints every 299
// Warning it receives, though, so the reason and what to do reach the
// user whatever kubectl was doing. REST clients still get the Status.
func WriteRefusal(ctx *fasthttp.RequestCtx, code int, message string) {
	WriteStatus(ctx, code, message)
	if w, err := utilnet.NewWarningHeader(299, "-", message); err == nil {
		ctx.Response.Header.Add("Warning", w)
	}
}
