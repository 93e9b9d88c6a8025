package api

import (
	"encoding/json"
	"slices"
)

// Capability names a service a plugin offers besides the base one.
type Capability string

// The capabilities a plugin can offer. One binary may offer several.
const (
	CapabilityProvisioner Capability = "provisioner"
	CapabilityBilling     Capability = "billing"
	CapabilityNotifier    Capability = "notifier"
	CapabilityDNS         Capability = "dns"
)

// Info describes a plugin; the host reads it with GetInfo.
type Info struct {
	// Name is the plugin's name, e.g. "notifier-file".
	Name string
	// Version is the plugin's semantic version, e.g. "1.2.0".
	Version string
	// ProtocolVersions are the protocol major versions the plugin speaks.
	ProtocolVersions []int
	// Capabilities are the capability services the plugin serves.
	Capabilities []Capability
	// ConfigSchema is the JSON Schema of the plugin's configuration.
	ConfigSchema json.RawMessage
	// SDKVersion is the version of the Go SDK the plugin was built with.
	SDKVersion string
}

// Has reports whether the plugin offers capability c.
func (i Info) Has(c Capability) bool { return slices.Contains(i.Capabilities, c) }

// HealthStatus is the state Health reports.
type HealthStatus int

// Health states.
const (
	HealthUnknown HealthStatus = iota
	// HealthServing: the plugin can do its work.
	HealthServing
	// HealthDegraded: it works, but something is wrong (a slow provider).
	HealthDegraded
	// HealthNotServing: calls will fail.
	HealthNotServing
)

// String returns the state's name.
func (s HealthStatus) String() string {
	switch s {
	case HealthServing:
		return "serving"
	case HealthDegraded:
		return "degraded"
	case HealthNotServing:
		return "not_serving"
	}
	return "unknown"
}

// Health is the answer to a health check.
type Health struct {
	Status  HealthStatus
	Message string
}
