// Package sdk is what a Berth plugin imports: the capability interfaces a
// plugin implements (Provisioner, Billing, Notifier, DNSProvider), the types
// they exchange, Serve to run the plugin under the Berth gateway, typed
// configuration (DecodeConfig, SchemaFor), the error kinds that travel over
// the wire (ErrNotFound, ...), and Host, the services the gateway offers
// back to a plugin.
//
// A plugin is a program whose main calls Serve once:
//
//	func main() {
//		sdk.Serve(sdk.Options{
//			Name:     "notifier-file",
//			Version:  "1.0.0",
//			Config:   sdk.TypedConfig(n.configure),
//			Notifier: n,
//		})
//	}
//
// The gateway starts the program, talks to it over gRPC through HashiCorp
// go-plugin, and stops it when it is done. The gateway side of the protocol
// is package pluginclient; package plugintest runs plugins in tests.
//
// The capability interfaces and their types are defined in package api
// and named here by type aliases (sdk.Provisioner is api.Provisioner), so
// that one package, internal/convert, converts them to and from the
// protocol's messages for both the plugin's side and the gateway's.
//
// This module deliberately depends on nothing of the gateway (no fasthttp,
// Badger or Kubernetes libraries), so plugins stay small.
package sdk
