// Command berth-plugin-dns-rfc2136 is Berth's DNS provider plugin for any
// authoritative server that takes dynamic updates (RFC 2136): Knot DNS,
// BIND, PowerDNS and others. Changes are sent as UPDATE messages and
// records are read by zone transfer (AXFR), both signed with a TSIG key
// (RFC 8945). The key's secret comes from a file or from the environment
// variable BERTH_DNS_TSIG_SECRET, never from the configuration itself.
//
// Configuration:
//
//	{"server": "ns1.example.net:53", "tsig_key_name": "berth.", "tsig_secret_file": "/etc/berth/tsig.key", "zones": ["example.com."]}
//
// README.md describes the fields and how to set up a server for it.
package main

import (
	"github.com/berthgw/berth/sdk"
	"github.com/hashicorp/go-hclog"
)

// Version is the plugin's version, reported to the gateway.
const Version = "1.0.0"

// options builds the plugin, logging to log.
func options(log hclog.Logger) sdk.Options {
	p := &provider{log: log}
	return sdk.Options{
		Name:    "dns-rfc2136",
		Version: Version,
		Config:  sdk.TypedConfig(p.configure),
		DNS:     p,
		Logger:  p.log,
	}
}

func main() {
	sdk.Serve(options(sdk.NewLogger("dns-rfc2136")))
}
