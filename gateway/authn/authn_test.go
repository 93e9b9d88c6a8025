package authn

import (
	"strings"
	"testing"
)

func TestParseBearer(t *testing.T) {
	long := strings.Repeat("a", 4096)
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"Bearer abc.def.ghi", "abc.def.ghi", true},
		{"bearer abc", "abc", true},
		{"BEARER  abc  ", "abc", true},
		{"Bearer\tabc", "abc", true},
		{"Bearer brt_AbC-_09", "brt_AbC-_09", true},
		{"Bearer abc==", "abc==", true},
		{"Bearer a+b/c~d", "a+b/c~d", true},
		{"Bearer " + long, long, true},
		{"Bearer " + long + "a", "", false},
		{"Bearer abc=d", "", false},
		{"Bearer a b", "", false},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Bearerabc", "", false},
		{"Basic YWxhZGRpbjpvcGVuc2VzYW1l", "", false},
		{"Bearer \"abc\"", "", false},
		{"Bearer abc\x00", "", false},
		{"Bearer é", "", false},
		{"Bearer " + strings.Repeat(".", 1<<20), "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, err := ParseBearer([]byte(tt.in))
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseBearer(%.40q) = %.40q, %v; want %.40q ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestNormalizeOrigin(t *testing.T) {
	tests := map[string]string{
		"https://console.example.com":     "https://console.example.com",
		"HTTPS://Console.Example.COM:443": "https://console.example.com",
		"http://example.com:80":           "http://example.com",
		"http://example.com:8080":         "http://example.com:8080",
		"https://example.com/":            "https://example.com",
		"http://[2001:DB8::1]:8443":       "http://[2001:db8::1]:8443",
		"http://127.0.0.1:9000":           "http://127.0.0.1:9000",
		"null":                            "",
		"https://example.com/path":        "",
		"https://user@example.com":        "",
		"ftp://example.com":               "",
		"https://example.com?q=1":         "",
		"https://example.com#f":           "",
		"//example.com":                   "",
		"example.com":                     "",
		"https://":                        "",
		"javascript:alert(1)":             "",
	}
	for in, want := range tests {
		got, ok := normalizeOrigin(in)
		if ok != (want != "") || got != want {
			t.Errorf("normalizeOrigin(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func TestNewRefusesBadOrigins(t *testing.T) {
	if _, err := New(Options{AllowedOrigins: []string{"https://ok.example", "not an origin"}}); err == nil {
		t.Error("bad origin accepted")
	}
	a, err := New(Options{AllowedOrigins: []string{"*", "https://ok.example"}})
	if err != nil || !a.anyOrigin || !a.origins["https://ok.example"] || a.cookieName != DefaultCookieName {
		t.Errorf("New: %+v %v", a, err)
	}
}
