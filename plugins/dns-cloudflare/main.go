// Command berth-plugin-dns-cloudflare is Berth's first-party DNS provider
// plugin for Cloudflare. It manages records of Cloudflare zones through
// Cloudflare's v4 REST API (net/http and encoding/json, no Cloudflare SDK),
// so the gateway can publish records and answer ACME DNS-01 challenges.
//
// The API token is read from the file named by api_token_file, or from the
// environment variable BERTH_CLOUDFLARE_API_TOKEN (name it in the plugin
// instance's env: list); it never appears in the configuration, in logs or
// in errors.
//
// Configuration (all optional):
//
//	{"api_token_file": "/run/secrets/cloudflare-token", "timeout": "30s", "per_page": 100}
//
// README.md describes the fields, the token's permissions and what the
// plugin does not do.
package main

import "github.com/berthgw/berth/sdk"

// Version is the plugin's version, reported to the gateway.
const Version = "1.0.0"

func options() sdk.Options {
	p := &provider{}
	return sdk.Options{
		Name:    "dns-cloudflare",
		Version: Version,
		Config:  sdk.TypedConfig(p.configure),
		DNS:     p,
	}
}

func main() {
	sdk.Serve(options())
}
