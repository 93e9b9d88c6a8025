//go:build tools

// Package tools records pebble as a dependency of this tools module.
package tools

import _ "github.com/letsencrypt/pebble/v2/cmd/pebble"
