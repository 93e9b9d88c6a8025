package proxy

import (
	"bytes"
	"errors"
	"iter"
	"net/url"
	"strings"
)

// Prefixes under which the gateway mounts the proxy: Berth's own and
// KubeCube's, so KubeCube clients work unchanged.
var Prefixes = []string{"/proxy/clusters/", "/api/v1/cube/proxy/clusters/"}

// Target is a parsed proxy request URI.
type Target struct {
	// Cluster is the validated cluster name.
	Cluster string
	// Path is the raw (still percent-encoded) path to send to the cluster,
	// starting with "/".
	Path string
	// Query is the raw query string without "?", possibly empty.
	Query string
}

// Errors from ParseTarget. ErrNotProxy means the URI is not under a proxy
// prefix at all; the others are client errors.
var (
	ErrNotProxy       = errors.New("not a proxy path")
	ErrBadClusterName = errors.New("invalid cluster name")
	ErrBadPath        = errors.New("path is not allowed through the proxy")
)

// allowedRoots are the API server paths the proxy forwards to. Anything
// else (a pod's or service's own web UI through an unexpected root, a
// debugging endpoint) is refused rather than passed blindly.
var allowedRoots = []string{"/api", "/apis", "/version", "/openapi", "/healthz", "/livez", "/readyz", "/.well-known/openid-configuration", "/openid/v1/jwks"}

// ParseTarget splits a raw request URI (as sent on the wire, before any
// normalisation) into cluster, path and query. It works on the raw bytes on
// purpose: fasthttp's normalised Path() resolves "..", decodes %2F and
// collapses slashes, which is exactly what lets a crafted URI escape one
// cluster into another or into the gateway's own API.
func ParseTarget(rawURI []byte) (Target, error) {
	uri := string(rawURI)
	var rest string
	found := false
	for _, p := range Prefixes {
		if r, ok := strings.CutPrefix(uri, p); ok {
			rest, found = r, true
			break
		}
	}
	if !found {
		return Target{}, ErrNotProxy
	}
	pathPart, query, _ := strings.Cut(rest, "?")
	name, path, hasSlash := strings.Cut(pathPart, "/")
	if !ValidClusterName(name) {
		return Target{}, ErrBadClusterName
	}
	if !hasSlash {
		path = ""
	}
	path = "/" + path
	if err := checkPath(path); err != nil {
		return Target{}, err
	}
	return Target{Cluster: name, Path: path, Query: query}, nil
}

// ValidClusterName reports whether name is a DNS-1123 label: 1–63
// lower-case letters, digits and '-', starting and ending alphanumeric.
func ValidClusterName(name string) bool {
	if len(name) == 0 || len(name) > 63 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (c != '-' || i == 0 || i == len(name)-1) {
			return false
		}
	}
	return true
}

// checkPath refuses anything that a server or an intermediary might
// interpret differently from how it reads: dot segments (plain or
// encoded), encoded slashes and backslashes, double encoding, empty
// segments, control characters; and any root outside allowedRoots.
func checkPath(path string) error {
	for i := 0; i < len(path); i++ {
		c := path[i]
		if c < 0x21 || c == 0x7f || c == '\\' || c >= 0x80 {
			return ErrBadPath
		}
	}
	if strings.Contains(path, "//") {
		return ErrBadPath
	}
	if strings.IndexByte(path, '%') >= 0 {
		lower := strings.ToLower(path)
		for _, bad := range []string{"%2f", "%5c", "%2e", "%25", "%00"} {
			if strings.Contains(lower, bad) {
				return ErrBadPath
			}
		}
	}
	for seg := range strings.SplitSeq(path, "/") {
		if seg == "." || seg == ".." {
			return ErrBadPath
		}
	}
	for _, root := range allowedRoots {
		if path == root || strings.HasPrefix(path, root+"/") {
			return nil
		}
	}
	return ErrBadPath
}

// hasToken reports whether a comma-separated header value holds token
// (case-insensitively), as in "Connection: keep-alive, Upgrade".
func hasToken(value []byte, token string) bool {
	for t := range headerTokens(value) {
		if equalFold(t, token) {
			return true
		}
	}
	return false
}

// headerTokens yields the elements of a comma-separated header value,
// trimmed of spaces, empty ones left out.
func headerTokens(value []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for part := range bytes.SplitSeq(value, []byte(",")) {
			if t := bytes.TrimSpace(part); len(t) > 0 && !yield(t) {
				return
			}
		}
	}
}

// decodedPath is a raw path as the API server routes it, percent-decoded.
// Whatever decides what a request is (a watch, a collection) must read this
// form: an escaped letter ("/api/v1/%77atch/pods") changes nothing for the
// API server, and must change nothing for Berth either. checkPath has
// already refused encoded slashes, dots and percent signs, so decoding
// cannot add or remove a segment. An undecodable path is returned as it is.
func decodedPath(raw string) string {
	p, err := url.PathUnescape(raw)
	if err != nil {
		return raw
	}
	return p
}
