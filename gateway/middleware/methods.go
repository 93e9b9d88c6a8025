package middleware

import "strings"

// methods are the HTTP methods Berth serves, on the API and the proxy
// alike: what Kubernetes clients and browsers send. CONNECT and TRACE are
// left out on purpose: Berth is no forward proxy, and TRACE only echoes a
// request (its cookies included) back to a page's script.
var methods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// AllowedMethods is the Allow header of a 405 for an unknown method.
var AllowedMethods = strings.Join(methods, ", ")

// KnownMethod reports whether m is one of the methods Berth serves. It
// is case-sensitive, as HTTP methods are: "get" is not GET.
func KnownMethod(m string) bool {
	for _, k := range methods {
		if m == k {
			return true
		}
	}
	return false
}

// MethodLabel is m as a metrics label: itself when known, else "other",
// so a client cannot grow the label set by inventing methods.
func MethodLabel(m string) string {
	if KnownMethod(m) {
		return m
	}
	return "other"
}
