package sdk

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/berthgw/berth/sdk/internal/rpc"
	"github.com/hashicorp/go-plugin"
)

// SDKVersion is the version of this module, reported by GetInfo.
const SDKVersion = "0.1.0"

// ProtocolVersion is the major version of the Berth plugin protocol this SDK
// speaks (proto package berth.plugin.v1). go-plugin negotiates it at start:
// the host offers the versions it knows, the plugin picks one it serves.
// Minor, additive changes are not versioned; callers probe for them at run
// time, and an UNIMPLEMENTED answer (ErrUnimplemented) means "not supported".
const ProtocolVersion = 1

// Handshake is the go-plugin handshake shared by the gateway and every
// plugin. The cookie only tells a plugin binary it was started by Berth (and
// not by hand or by another go-plugin host); it is not a security measure.
// ProtocolVersion is left zero because the version is negotiated through
// VersionedPlugins.
var Handshake = plugin.HandshakeConfig{
	MagicCookieKey:   "BERTH_PLUGIN_MAGIC_COOKIE",
	MagicCookieValue: "7d0c5a1e-berth-plugin-3f9b2c64e8a1",
}

// Names under which the services are registered in a go-plugin PluginSet
// (what the host passes to Dispense).
const (
	PluginName            = "plugin"
	ProvisionerPluginName = "provisioner"
	BillingPluginName     = "billing"
	NotifierPluginName    = "notifier"
	DNSPluginName         = "dns"
)

// MaxMessageSize caps every gRPC message between host and plugin, in both
// directions and on both sides (16 MiB; see docs/plugins.md for why).
const MaxMessageSize = rpc.MaxMessageSize

// DefaultCallTimeout is the deadline the SDK's clients give a unary call
// whose context has none.
const DefaultCallTimeout = rpc.DefaultCallTimeout

// ErrIncompatibleProtocol is matched (errors.Is) by an
// *IncompatibleProtocolError.
var ErrIncompatibleProtocol = errors.New("incompatible plugin protocol")

// IncompatibleProtocolError reports that a plugin and the host share no
// protocol major version. The host refuses such a plugin.
type IncompatibleProtocolError struct {
	// Plugin is the name of the plugin, if known.
	Plugin string
	// PluginVersions are the protocol versions the plugin serves.
	PluginVersions []int
	// HostVersions are the protocol versions the host speaks.
	HostVersions []int
}

// Error names both sides' versions and what to do about it.
func (e *IncompatibleProtocolError) Error() string {
	name := "plugin"
	if e.Plugin != "" {
		name = fmt.Sprintf("plugin %q", e.Plugin)
	}
	return fmt.Sprintf("%s speaks Berth plugin protocol %s but this gateway speaks %s: "+
		"rebuild the plugin with a github.com/berthgw/berth/sdk release for protocol %s, or run a gateway that supports %s",
		name, versionList(e.PluginVersions), versionList(e.HostVersions),
		versionList(e.HostVersions), versionList(e.PluginVersions))
}

// Is makes errors.Is(err, ErrIncompatibleProtocol) true.
func (e *IncompatibleProtocolError) Is(target error) bool { return target == ErrIncompatibleProtocol }

// CheckProtocol returns an *IncompatibleProtocolError when the two lists
// share no version.
func CheckProtocol(pluginVersions, hostVersions []int) error {
	for _, v := range pluginVersions {
		if slices.Contains(hostVersions, v) {
			return nil
		}
	}
	return &IncompatibleProtocolError{PluginVersions: pluginVersions, HostVersions: hostVersions}
}

func versionList(vs []int) string {
	if len(vs) == 0 {
		return "(none)"
	}
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = "v" + strconv.Itoa(v)
	}
	return strings.Join(parts, ", ")
}
