// Package noise prints to stdout in its init. It does not import the SDK,
// and its import path sorts before the SDK's, so its init runs before the
// SDK's stdout guard is in place.
package noise

import "fmt"

func init() {
	fmt.Println("noise: printed before the SDK could guard stdout")
}
