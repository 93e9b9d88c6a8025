//go:build !unix

package store

// lockDir is a no-op where flock is not available: Badger's own directory
// lock still refuses a second process, with its own error.
func lockDir(string) (func(), error) { return func() {}, nil }
