package config

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// Notifications configures the delivery of events to channels.
type Notifications struct {
	// AllowPrivateTargets are the CIDRs of receivers that are private on
	// purpose; every other private, loopback, link-local or metadata
	// address is refused. Environment: BERTH_NOTIFICATIONS_ALLOW_PRIVATE_TARGETS,
	// comma-separated.
	AllowPrivateTargets []string `yaml:"allow_private_targets"`
	// CAFile holds extra trusted root certificates (PEM) for receivers.
	CAFile string `yaml:"ca_file"`
}

func (c *Config) validateNotifications() error {
	n := &c.Notifications
	for _, s := range n.AllowPrivateTargets {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			if p != p.Masked() {
				return &Error{"notifications.allow_private_targets", fmt.Sprintf("%q has host bits set; did you mean %s?", s, p.Masked())}
			}
			continue
		}
		if _, err := netip.ParseAddr(s); err == nil {
			continue
		}
		return &Error{"notifications.allow_private_targets", fmt.Sprintf("%q is not a CIDR or an address", s)}
	}
	if n.CAFile != "" {
		if !filepath.IsAbs(n.CAFile) {
			return &Error{"notifications.ca_file", "must be an absolute path"}
		}
		if _, err := os.Stat(n.CAFile); err != nil {
			return &Error{"notifications.ca_file", "cannot be read"}
		}
	}
	return nil
}
