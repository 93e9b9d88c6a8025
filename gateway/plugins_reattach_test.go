package gateway

import (
	"strings"
	"testing"

	"github.com/berthgw/berth/gateway/pluginhost"
)

// TestReattachPlugins: BERTH_PLUGIN_REATTACH as a plugin in debug mode
// prints it is taken; a typo in a plugin's name, or a line that is not
// that JSON, stops the gateway instead of silently starting the binary.
func TestReattachPlugins(t *testing.T) {
	declared := []pluginhost.Plugin{{Name: "notifier-slack"}}
	good := `{"notifier-slack":{"protocol":"grpc","protocol_version":1,"pid":4242,"test":true,"addr":{"network":"unix","address":"/tmp/plugin1234"}}}`
	m, err := reattachPlugins(good, declared)
	if err != nil || m["notifier-slack"].Pid != 4242 || m["notifier-slack"].Addr.Address != "/tmp/plugin1234" {
		t.Fatalf("reattachPlugins(good) = %+v, %v", m, err)
	}
	if m, err := reattachPlugins("", declared); m != nil || err != nil {
		t.Errorf("unset: %v, %v", m, err)
	}
	for _, tt := range []struct{ env, want string }{
		{strings.Replace(good, "notifier-slack", "notifier-slak", 1), `names plugin "notifier-slak", which plugins.instances does not declare`},
		{"notifier-slack=4242", "is not the JSON a plugin prints in debug mode"},
		{strings.Replace(good, `"pid":4242`, `"pid":0`, 1), "pid is required"},
		{strings.Replace(good, `"unix"`, `"carrier-pigeon"`, 1), "unknown network"},
	} {
		if _, err := reattachPlugins(tt.env, declared); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("reattachPlugins(%s) = %v, want %q", tt.env, err, tt.want)
		}
	}
}
