package idempotency

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthgw/berth/sdk/internal/rpcerr"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestSameKeySameAnswer(t *testing.T) {
	c := New(time.Hour, 10)
	var calls atomic.Int32
	fn := func() (proto.Message, error) {
		n := calls.Add(1)
		return wrapperspb.Int32(n), nil
	}
	req := wrapperspb.String("req")
	a, err := c.Do(context.Background(), "m", "k1", req, fn)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Do(context.Background(), "m", "k1", req, fn)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(a, b) || calls.Load() != 1 {
		t.Fatalf("answers %v %v after %d calls", a, b, calls.Load())
	}
	if _, err := c.Do(context.Background(), "m", "k2", req, fn); err != nil || calls.Load() != 2 {
		t.Fatalf("new key: err %v calls %d", err, calls.Load())
	}
	if _, err := c.Do(context.Background(), "other", "k1", req, fn); err != nil || calls.Load() != 3 {
		t.Fatalf("same key on another method must run: err %v calls %d", err, calls.Load())
	}
}

func TestErrors(t *testing.T) {
	c := New(time.Hour, 10)
	ok := func() (proto.Message, error) { return wrapperspb.Bool(true), nil }
	tests := []struct {
		name string
		key  string
		req  proto.Message
		want error
	}{
		{"missing key", "", wrapperspb.String("a"), rpcerr.ErrInvalidArgument},
		{"reused key", "k", wrapperspb.String("b"), rpcerr.ErrInvalidArgument},
	}
	if _, err := c.Do(context.Background(), "m", "k", wrapperspb.String("a"), ok); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := c.Do(context.Background(), "m", tt.key, tt.req, ok); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestFailureIsForgotten(t *testing.T) {
	c := New(time.Hour, 10)
	boom := errors.New("boom")
	if _, err := c.Do(context.Background(), "m", "k", wrapperspb.String("a"), func() (proto.Message, error) { return nil, boom }); err != boom {
		t.Fatalf("err = %v", err)
	}
	got, err := c.Do(context.Background(), "m", "k", wrapperspb.String("a"), func() (proto.Message, error) { return wrapperspb.Bool(true), nil })
	if err != nil || !got.(*wrapperspb.BoolValue).GetValue() {
		t.Fatalf("retry after failure: %v %v", got, err)
	}
}

func TestConcurrentCallsRunOnce(t *testing.T) {
	c := New(time.Hour, 10)
	var calls atomic.Int32
	release := make(chan struct{})
	fn := func() (proto.Message, error) {
		calls.Add(1)
		<-release
		return wrapperspb.Bool(true), nil
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Do(context.Background(), "m", "k", wrapperspb.String("a"), fn); err != nil {
				t.Error(err)
			}
		}()
	}
	close(release)
	wg.Wait()
	if calls.Load() != 1 {
		t.Fatalf("fn ran %d times", calls.Load())
	}
}

func TestBounds(t *testing.T) {
	c := New(time.Minute, 2)
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	ok := func() (proto.Message, error) { return wrapperspb.Bool(true), nil }
	for _, k := range []string{"a", "b", "c"} {
		if _, err := c.Do(context.Background(), "m", k, wrapperspb.String(k), ok); err != nil {
			t.Fatal(err)
		}
	}
	if c.Len() != 2 {
		t.Fatalf("len = %d, want 2", c.Len())
	}
	now = now.Add(2 * time.Minute)
	if _, err := c.Do(context.Background(), "m", "d", wrapperspb.String("d"), ok); err != nil {
		t.Fatal(err)
	}
	if c.Len() != 1 {
		t.Fatalf("len after expiry = %d, want 1", c.Len())
	}
}
