package proxy

import (
	"errors"
	"strings"
	"testing"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		uri     string
		cluster string
		path    string
		query   string
		err     error
	}{
		{"/proxy/clusters/prod/api/v1/pods?watch=1", "prod", "/api/v1/pods", "watch=1", nil},
		{"/api/v1/cube/proxy/clusters/prod/apis/apps/v1/deployments", "prod", "/apis/apps/v1/deployments", "", nil},
		{"/proxy/clusters/prod/version", "prod", "/version", "", nil},
		{"/proxy/clusters/prod/api/v1/namespaces/a/services/https:web:443/proxy/", "prod", "/api/v1/namespaces/a/services/https:web:443/proxy/", "", nil},
		{"/proxy/clusters/prod/api/v1/pods?fieldSelector=a%3D..%2F", "prod", "/api/v1/pods", "fieldSelector=a%3D..%2F", nil},
		{"/healthz", "", "", "", ErrNotProxy},
		{"/proxy/clusters/", "", "", "", ErrBadClusterName},
		{"/proxy/clusters/Prod/api", "", "", "", ErrBadClusterName},
		{"/proxy/clusters/-a/api", "", "", "", ErrBadClusterName},
		{"/proxy/clusters/a%2fb/api", "", "", "", ErrBadClusterName},
		{"/proxy/clusters/" + strings.Repeat("a", 64) + "/api", "", "", "", ErrBadClusterName},
		{"/proxy/clusters/prod", "", "", "", ErrBadPath},
		{"/proxy/clusters/prod/", "", "", "", ErrBadPath},
		{"/proxy/clusters/prod/api/../../other/api", "", "", "", ErrBadPath},
		{"/proxy/clusters/prod/api/v1/%2e%2e/x", "", "", "", ErrBadPath},
		{"/proxy/clusters/prod/api/v1/%2E./x", "", "", "", ErrBadPath},
		{"/proxy/clusters/prod/api%2fv1/pods", "", "", "", ErrBadPath},
		{"/proxy/clusters/prod/api/v1/%252e%252e/x", "", "", "", ErrBadPath},
		{"/proxy/clusters/prod/api\\..\\x", "", "", "", ErrBadPath},
		{"/proxy/clusters/prod/api/v1//pods", "", "", "", ErrBadPath},
		{"/proxy/clusters/prod/api/./v1", "", "", "", ErrBadPath},
		{"/proxy/clusters/prod/debug/pprof", "", "", "", ErrBadPath},
		{"/proxy/clusters/prod/apisx", "", "", "", ErrBadPath},
		{"/proxy/clusters/prod/api/v1/pods\x00", "", "", "", ErrBadPath},
	}
	for _, tt := range tests {
		got, err := ParseTarget([]byte(tt.uri))
		if !errors.Is(err, tt.err) {
			t.Errorf("%q: err %v, want %v", tt.uri, err, tt.err)
			continue
		}
		if err == nil && (got.Cluster != tt.cluster || got.Path != tt.path || got.Query != tt.query) {
			t.Errorf("%q: got %+v", tt.uri, got)
		}
	}
}

func TestIsCollection(t *testing.T) {
	for path, want := range map[string]bool{
		"/api/v1/pods":                           true,
		"/api/v1/namespaces":                     true,
		"/api/v1/namespaces/a/pods":              true,
		"/apis/apps/v1/deployments":              true,
		"/apis/apps/v1/namespaces/a/deployments": true,
		"/api/v1/namespaces/a":                   false,
		"/api/v1/namespaces/a/pods/p":            false,
		"/api/v1/namespaces/a/pods/p/log":        false,
		"/api/v1":                                false,
		"/apis/apps/v1":                          false,
		"/version":                               false,
		"/api/v1/watch":                          false,
		"/api/v1/%70ods":                         true, // read decoded, as the API server does
		"/api/v1/%77atch":                        false,
	} {
		if got := isCollection(path); got != want {
			t.Errorf("isCollection(%q) = %v, want %v", path, got, want)
		}
	}
}

// FuzzParseTarget holds the path splitter's invariants: whatever the input,
// an accepted target has a valid cluster name and a path that cannot climb
// out of the API roots or smuggle an encoded separator.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"/proxy/clusters/a/api/v1/pods", "/proxy/clusters/a/api/%2e%2e/x", "/api/v1/cube/proxy/clusters/b/apis/x?y=z", "/proxy/clusters/a/api/v1/../x", "/proxy/clusters//api"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		got, err := ParseTarget([]byte(uri))
		if err != nil {
			return
		}
		if !ValidClusterName(got.Cluster) {
			t.Fatalf("accepted bad cluster %q", got.Cluster)
		}
		low := strings.ToLower(got.Path)
		// Dot segments also at the end (hence the added slash); the rest
		// anywhere in the path itself (a trailing slash is legitimate).
		for _, bad := range []string{"/../", "/./"} {
			if strings.Contains(low+"/", bad) {
				t.Fatalf("accepted path %q containing %q", got.Path, bad)
			}
		}
		for _, bad := range []string{"%2f", "%2e", "%5c", "\\", "//", "%25"} {
			if strings.Contains(low, bad) {
				t.Fatalf("accepted path %q containing %q", got.Path, bad)
			}
		}
		if !strings.HasPrefix(got.Path, "/") || strings.Contains(got.Path, "?") {
			t.Fatalf("path %q malformed", got.Path)
		}
	})
}

func TestIsStream(t *testing.T) {
	tests := []struct {
		path, query string
		want        bool
	}{
		{"/api/v1/watch/namespaces/default/pods", "", true},
		{"/api/v1/watch/pods", "", true},
		{"/apis/apps/v1/watch/deployments", "", true},
		{"/api/v1/pods", "watch=1", true},
		{"/api/v1/pods", "labelSelector=a&watch=true", true},
		{"/api/v1/namespaces/default/pods/p/log", "follow=true", true},
		{"/api/v1/pods", "watch=0", false},
		{"/api/v1/namespaces/default/pods/p/log", "", false},
		// A namespace or an object called "watch" is not a watch.
		{"/api/v1/namespaces/watch/pods", "", false},
		{"/api/v1/namespaces/default/configmaps/watch", "", false},
		{"/apis/apps/v1/namespaces/watch/deployments/watch/scale", "", false},
		{"/apis/watch/v1/things", "", false},
	}
	for _, tt := range tests {
		if got := isStream(Target{Path: tt.path, Query: tt.query}); got != tt.want {
			t.Errorf("isStream(%s?%s) = %v, want %v", tt.path, tt.query, got, tt.want)
		}
	}
}
