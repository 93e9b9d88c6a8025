// Package testhook holds settings that only the SDK's own tests change,
// to build plugins that misbehave on purpose (an unsupported protocol
// version). Plugin authors cannot reach it: it is internal.
package testhook

import (
	"os"
	"strconv"
	"strings"
)

// EnvServedVersions, when set in a plugin's environment to a comma-separated
// list of versions, replaces the protocol versions the plugin serves.
const EnvServedVersions = "BERTH_SDK_TEST_SERVED_PROTOCOL_VERSIONS"

// ServedVersions replaces the served protocol versions when non-nil.
var ServedVersions []int

// Served returns the override from ServedVersions or the environment, or nil.
func Served() []int {
	if ServedVersions != nil {
		return ServedVersions
	}
	env := os.Getenv(EnvServedVersions)
	if env == "" {
		return nil
	}
	var vs []int
	for _, s := range strings.Split(env, ",") {
		if v, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
			vs = append(vs, v)
		}
	}
	return vs
}
