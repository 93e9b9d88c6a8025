package clusters

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"
	"k8s.io/apimachinery/pkg/util/sets"
	apirequest "k8s.io/apiserver/pkg/endpoints/request"

	"github.com/berthgw/berth/proxy"
)

// requestInfo parses a proxied path exactly as the kube-apiserver does
// for its own authorization and audit (these are its defaults), so what
// Berth audits is what the cluster will do, not what a path looks like:
// a trailing slash, an escaped letter ("%65xec") or an extra path segment
// cannot hide an exec from it.
var requestInfo = &apirequest.RequestInfoFactory{
	APIPrefixes:          sets.NewString("api", "apis"),
	GrouplessAPIPrefixes: sets.NewString("api"),
}

// connectSubresources give a shell, a tunnel or a raw HTTP path into a
// workload or node: exec, attach, portforward (pods) and proxy (pods,
// services, nodes). They are audited whatever the method. The value says
// whether the apiserver serves the subresource with more path after it:
// only proxy does (pods/x/proxy/some/path); pods/x/exec/more is a 404.
var connectSubresources = map[string]bool{"exec": false, "attach": false, "portforward": false, "proxy": true}

// writeVerbs are the apiserver's verbs that change state.
var writeVerbs = map[string]bool{"create": true, "update": true, "patch": true, "delete": true, "deletecollection": true}

// auditVerb says whether a proxied request is audited, and as what:
// writes, and the connect subresources whatever the method.
func auditVerb(ctx *fasthttp.RequestCtx, t proxy.Target) (string, bool) {
	return auditClass(string(ctx.Method()), t.Path, t.Query)
}

// auditClass is auditVerb on the parts of a request. rawPath is still
// percent-encoded; the apiserver sees it decoded, as net/http decodes it.
func auditClass(method, rawPath, rawQuery string) (string, bool) {
	if (method == fasthttp.MethodGet || method == fasthttp.MethodHead) && !namesConnect(rawPath) {
		// A read is audited only as a connect subresource, which is a
		// segment of its path: most reads are spared the parse.
		return "", false
	}
	path, err := url.PathUnescape(rawPath)
	if err != nil {
		// The apiserver refuses such a path outright; a write is still
		// audited as an attempt.
		return methodVerb(method)
	}
	info, err := requestInfo.NewRequestInfo(&http.Request{Method: method, URL: &url.URL{Path: path, RawQuery: rawQuery}})
	if err != nil || !info.IsResourceRequest {
		return methodVerb(method)
	}
	if subpath, ok := connectSubresources[info.Subresource]; ok && (subpath || len(info.Parts) == 3) {
		return info.Subresource, true
	}
	if writeVerbs[info.Verb] {
		return info.Verb, true
	}
	return "", false
}

// namesConnect reports whether rawPath could name a connect subresource:
// it spells one, or hides letters behind a '%'.
func namesConnect(rawPath string) bool {
	if strings.IndexByte(rawPath, '%') >= 0 {
		return true
	}
	for sub := range connectSubresources {
		if strings.Contains(rawPath, sub) {
			return true
		}
	}
	return false
}

// methodVerb audits a request that names no resource (/api, /version,
// a path the parser gave up on) by its method alone.
func methodVerb(method string) (string, bool) {
	switch method {
	case fasthttp.MethodPost:
		return "create", true
	case fasthttp.MethodPut:
		return "update", true
	case fasthttp.MethodPatch:
		return "patch", true
	case fasthttp.MethodDelete:
		return "delete", true
	}
	return "", false
}

// codeLabel is an upstream status code as a metrics label; a cluster (or
// anything pretending to be one) cannot invent more than the valid ones.
func codeLabel(code int) string {
	if code < 100 || code > 599 {
		return "other"
	}
	return strconv.Itoa(code)
}
