package clusters

import "testing"

func TestAuditClass(t *testing.T) {
	const pod = "/api/v1/namespaces/d/pods/x"
	tests := []struct {
		method, path, query string
		verb                string // "" means not audited
	}{
		{"POST", pod + "/exec", "command=sh", "exec"},
		{"GET", pod + "/exec", "command=sh", "exec"},
		{"GET", pod + "/%65xec", "command=sh", "exec"}, // decoded as the apiserver decodes it
		{"HEAD", pod + "/p%72oxy/", "", "proxy"},
		{"POST", pod + "/exec/", "", "exec"},
		{"POST", pod + "/%65xec", "", "exec"},
		{"GET", pod + "/attach/", "", "attach"},
		{"POST", pod + "/portforward", "", "portforward"},
		{"GET", pod + "/proxy", "", "proxy"},
		{"GET", pod + "/proxy/admin/", "", "proxy"},
		// The apiserver has no route for more path after exec: a 404.
		{"GET", pod + "/exec/more", "command=sh", ""},
		{"POST", pod + "/exec/more", "command=sh", "create"},
		{"GET", "/api/v1/namespaces/d/services/s:80/proxy/a/b", "", "proxy"},
		{"GET", "/api/v1/nodes/n/proxy/metrics", "", "proxy"},
		// The old /api/v1/proxy/... form is gone from the apiserver (404).
		{"GET", "/api/v1/proxy/namespaces/d/pods/x", "", ""},
		// The apiserver has no EXEC subresource: no exec, only a write.
		{"POST", pod + "/EXEC", "", "create"},
		{"GET", pod + "/EXEC", "", ""},
		{"GET", pod, "", ""},
		{"GET", pod + "/log", "follow=true", ""},
		{"GET", "/api/v1/namespaces/d/pods", "watch=true", ""},
		{"POST", "/api/v1/namespaces/d/pods", "", "create"},
		{"PUT", pod, "", "update"},
		{"PATCH", pod + "/", "", "patch"},
		{"DELETE", pod, "", "delete"},
		{"DELETE", "/api/v1/namespaces/d/pods", "", "deletecollection"},
		{"DELETE", "/apis/apps/v1/namespaces/d/deployments/web", "", "delete"},
		{"GET", "/version", "", ""},
		{"POST", "/version", "", "create"},
		{"GET", "/apis", "", ""},
		{"HEAD", pod, "", ""},
		{"POST", pod + "/%zz", "", "create"},
	}
	for _, tt := range tests {
		verb, audited := auditClass(tt.method, tt.path, tt.query)
		if verb != tt.verb || audited != (tt.verb != "") {
			t.Errorf("%s %s?%s: (%q, %v), want %q", tt.method, tt.path, tt.query, verb, audited, tt.verb)
		}
	}
}

func TestCodeLabel(t *testing.T) {
	for code, want := range map[int]string{200: "200", 101: "101", 599: "599", 600: "other", 99: "other", 0: "other", -1: "other"} {
		if got := codeLabel(code); got != want {
			t.Errorf("codeLabel(%d) = %q, want %q", code, got, want)
		}
	}
}
