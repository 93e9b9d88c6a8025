// Package api holds the plugin API's Go types: the capability interfaces a
// plugin implements (Provisioner, Billing, Notifier, DNSProvider), the
// values they exchange, and Host, the services the gateway offers back.
//
// Plugin authors use these types through package sdk, which names each of
// them (sdk.Provisioner is api.Provisioner). They live in this leaf
// package, which imports neither sdk nor the protocol, so that both sides
// of the wire (sdk's plugin server, and pluginclient and host on the
// gateway's side) convert them to and from the protocol's messages in one
// place, internal/convert. The error kinds named in the comments are
// package sdk's.
package api
