//go:build !unix

package sdk

import "github.com/hashicorp/go-hclog"

// watchParent does nothing where parent pids are not reliable; go-plugin's
// host kills its plugins on a clean exit.
func watchParent(hclog.Logger, func(int)) {}
