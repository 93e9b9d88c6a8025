package sdk

import (
	"context"
	"fmt"
	"time"
)

// noHost is the Host of a plugin whose gateway offers no services.
type noHost struct{}

func (noHost) Get(context.Context, string) ([]byte, error) {
	return nil, fmt.Errorf("host KV: %w", ErrUnimplemented)
}
func (noHost) Put(context.Context, string, []byte, time.Duration) error {
	return fmt.Errorf("host KV: %w", ErrUnimplemented)
}
func (noHost) Delete(context.Context, string) error {
	return fmt.Errorf("host KV: %w", ErrUnimplemented)
}
func (noHost) List(context.Context, string) ([]KVEntry, error) {
	return nil, fmt.Errorf("host KV: %w", ErrUnimplemented)
}
func (noHost) Emit(context.Context, Event) error {
	return fmt.Errorf("host events: %w", ErrUnimplemented)
}
