// Command berth-plugin-notify is Berth's first-party notifier plugin. It
// sends notifications by email (SMTP), to webhooks (signed JSON POSTs), to
// Slack and to Telegram. It keeps no per-channel state: every message
// carries the operator's saved channel settings. Every outbound connection
// goes through netguard, so that settings entered by a tenant cannot make
// the gateway reach loopback, private networks or cloud metadata unless
// the operator allows those networks.
//
// Configuration (all optional):
//
//	{"allow_private_targets": ["10.20.0.0/16"], "ca_file": "/etc/berth/extra-roots.pem", "timeout": "10s"}
//
// The binary is installed beside the berth binary, where the gateway finds
// it; README.md describes the channels and their settings.
package main

import "github.com/berthgw/berth/sdk"

// Version is the plugin's version, reported to the gateway.
const Version = "1.0.0"

func options() sdk.Options {
	n := newNotifier()
	return sdk.Options{
		Name:     "notify",
		Version:  Version,
		Config:   sdk.TypedConfig(n.configure),
		Notifier: n,
	}
}

func main() {
	sdk.Serve(options())
}
