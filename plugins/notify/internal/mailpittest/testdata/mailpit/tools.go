//go:build tools

// Package tools records mailpit as a dependency of this tools module.
package tools

import _ "github.com/axllent/mailpit"
