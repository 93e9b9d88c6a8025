//go:build tools

// Package tools records stripe-mock as a dependency of this tools module.
package tools

import _ "github.com/stripe/stripe-mock"
