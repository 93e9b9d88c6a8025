package config

import (
	"errors"
	"slices"
	"testing"
)

func TestNotificationsAllowList(t *testing.T) {
	c, err := Load("", envMap(map[string]string{"BERTH_NOTIFICATIONS_ALLOW_PRIVATE_TARGETS": "10.0.0.0/8, 127.0.0.1"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Notifications.AllowPrivateTargets; !slices.Equal(got, []string{"10.0.0.0/8", "127.0.0.1"}) {
		t.Errorf("allow list from the environment: %q", got)
	}
	def, err := Load("", envMap(nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(def.Notifications.AllowPrivateTargets) != 0 || !def.Plugins.Discover {
		t.Errorf("defaults: allow list %q (want none), discover %v (want on)", def.Notifications.AllowPrivateTargets, def.Plugins.Discover)
	}
	for _, env := range []map[string]string{
		{"BERTH_NOTIFICATIONS_ALLOW_PRIVATE_TARGETS": "10.0.0.0/33"},
		{"BERTH_NOTIFICATIONS_ALLOW_PRIVATE_TARGETS": "intranet"},
		{"BERTH_NOTIFICATIONS_ALLOW_PRIVATE_TARGETS": "10.0.0.5/8"},
		{"BERTH_NOTIFICATIONS_CA_FILE": "relative.pem"},
		{"BERTH_PLUGINS_DIR": "plugins"},
	} {
		_, err := Load("", envMap(env))
		var ce *Error
		if !errors.As(err, &ce) {
			t.Errorf("%v: accepted (%v)", env, err)
		}
	}
}
