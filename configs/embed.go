// Package configs holds Berth's example configuration, which is also the
// default the binary runs when no --config is given.
package configs

import _ "embed"

// Default is the text of berth.yaml, embedded so that the documented example
// and the built-in default can never drift apart.
//
//go:embed berth.yaml
var Default []byte
