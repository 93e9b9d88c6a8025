package sdk

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

type nopNotifier struct{}

func (nopNotifier) ListChannels(context.Context) ([]Channel, error) { return nil, nil }
func (nopNotifier) Send(context.Context, Message) (Delivery, error) { return Delivery{}, nil }

func env(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

// TestServeRefusesWithoutCookie runs Serve's logic in process: a wrong or
// missing cookie is refused before anything is served, with the reason.
func TestServeRefusesWithoutCookie(t *testing.T) {
	opts := Options{Name: "t", Version: "1.0.0", Notifier: nopNotifier{}}
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"missing", map[string]string{}, "must be started by the Berth gateway"},
		{"wrong", map[string]string{Handshake.MagicCookieKey: "nope"}, "has the wrong value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := serve(opts, nil, env(tt.env), &out)
			if !errors.Is(err, ErrNotStartedByBerth) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("serve() = %v, want a refusal saying %q", err, tt.want)
			}
		})
	}
}

func TestServeRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no name", Options{Version: "1.0.0", Notifier: nopNotifier{}}, "Name is required"},
		{"bad version", Options{Name: "x", Version: "v1", Notifier: nopNotifier{}}, `Version "v1" is not a semantic version`},
		{"no capability", Options{Name: "x", Version: "1.0.0"}, "no capability set"},
		{"bad schema", Options{Name: "x", Version: "1.0.0", Notifier: nopNotifier{}, ConfigSchema: []byte("{")}, "not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewServeConfig(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewServeConfig() = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestCheckHostVersions(t *testing.T) {
	tests := []struct {
		env    string
		served []int
		ok     bool
	}{
		{"", []int{1}, true},
		{"1", []int{1}, true},
		{"1,2", []int{2}, true},
		{"1", []int{2}, false},
		{"x,3", []int{1, 2}, false},
	}
	for _, tt := range tests {
		err := checkHostVersions(tt.env, tt.served)
		if (err == nil) != tt.ok {
			t.Errorf("checkHostVersions(%q, %v) = %v", tt.env, tt.served, err)
		}
		if err != nil && !errors.Is(err, ErrIncompatibleProtocol) {
			t.Errorf("error %v does not match ErrIncompatibleProtocol", err)
		}
	}
}

func TestIncompatibleProtocolMessage(t *testing.T) {
	err := &IncompatibleProtocolError{Plugin: "dns-x", PluginVersions: []int{2}, HostVersions: []int{1}}
	want := `plugin "dns-x" speaks Berth plugin protocol v2 but this gateway speaks v1`
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Error() = %q", err)
	}
}

// TestForwardHandshake: only go-plugin's handshake line reaches stdout,
// whatever is printed around it.
func TestForwardHandshake(t *testing.T) {
	handshake := "1|1|unix|/tmp/plugin123|grpc|MIIBcert\n"
	in := "stray print\npartial " + "line\n" + handshake + "after\n"
	var out, errOut bytes.Buffer
	forwardHandshake(strings.NewReader(in), &out, &errOut)
	if out.String() != handshake {
		t.Errorf("stdout = %q, want only the handshake", out.String())
	}
	if errOut.String() != "stray print\npartial line\nafter\n" {
		t.Errorf("stderr = %q", errOut.String())
	}
}

func TestDebugRequested(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		want bool
	}{
		{nil, nil, false},
		{[]string{"-debug"}, nil, true},
		{[]string{"--debug"}, nil, true},
		{[]string{"-v"}, map[string]string{EnvDebug: "1"}, true},
		{nil, map[string]string{EnvDebug: "false"}, false},
	}
	for _, tt := range tests {
		if got := debugRequested(tt.args, env(tt.env)); got != tt.want {
			t.Errorf("debugRequested(%v, %v) = %v", tt.args, tt.env, got)
		}
	}
}
