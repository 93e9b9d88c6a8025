//go:build tools

// Package tools pins Dex, the OpenID provider single sign-on's tests sign
// in through; dextest builds github.com/dexidp/dex/cmd/dex from here.
package tools

import _ "github.com/dexidp/dex/cmd/dex"
