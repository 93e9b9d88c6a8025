// Package host is the gateway's side of the services a Berth plugin can
// call back: a key-value store private to each plugin and an event sink.
// The gateway implements KVBackend (on Badger) and EventSink, and
// pluginclient registers them on the plugin's go-plugin broker with
// Register when it configures the plugin.
package host

import (
	"context"
	"fmt"
	"time"

	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/internal/convert"
	"github.com/berthgw/berth/sdk/internal/rpc"
	pb "github.com/berthgw/berth/sdk/proto/berth/plugin/v1"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// Limits the host enforces on plugins' KV use, before the backend sees a
// request. They keep one plugin from filling the gateway's database with
// one call; the backend may enforce quotas of its own.
const (
	MaxKeyLen    = 1024
	MaxValueLen  = 1 << 20
	MaxListLimit = 1000
)

// KVBackend stores one plugin's keys. The gateway gives each plugin its own
// backend (a Badger key prefix), so keys never collide across plugins.
type KVBackend interface {
	// Get returns an error wrapping sdk.ErrNotFound for a missing or
	// expired key.
	Get(ctx context.Context, key string) ([]byte, error)
	// Put stores value; ttl > 0 makes the entry expire after it.
	Put(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List returns up to limit entries with the prefix whose keys sort
	// after startAfter, in key order, and whether more follow.
	List(ctx context.Context, prefix, startAfter string, limit int) (entries []sdk.KVEntry, more bool, err error)
}

// EventSink receives the events one plugin emits.
type EventSink interface {
	Emit(ctx context.Context, ev sdk.Event) error
}

// Services are what the host offers one plugin. A nil field is not
// offered: the plugin's calls to it fail with sdk.ErrUnimplemented.
type Services struct {
	KV     KVBackend
	Events EventSink
}

// Empty reports whether no service is offered.
func (s Services) Empty() bool { return s.KV == nil && s.Events == nil }

// Register serves s to the plugin on broker and returns the broker id to
// send in the plugin's Configure request. The plugin must dial the id
// within go-plugin's broker timeout (5 s), which Configure does at once.
// Serving stops when the broker closes (the plugin client is killed).
func Register(broker *plugin.GRPCBroker, s Services, logger hclog.Logger) uint32 {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	id := broker.NextId()
	go broker.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
		srv := grpc.NewServer(append(opts, rpc.ServerOptions(logger)...)...)
		RegisterServices(srv, s)
		return srv
	})
	return id
}

// RegisterServices registers s on a gRPC server; Register uses it, and
// tests that build their own server can too.
func RegisterServices(srv *grpc.Server, s Services) {
	if s.KV != nil {
		pb.RegisterHostKVServer(srv, &kvServer{kv: s.KV})
	}
	if s.Events != nil {
		pb.RegisterHostEventsServer(srv, &eventsServer{sink: s.Events})
	}
}

type kvServer struct {
	pb.UnimplementedHostKVServer
	kv KVBackend
}

func checkKey(key string) error {
	if key == "" {
		return fmt.Errorf("key is required: %w", sdk.ErrInvalidArgument)
	}
	if len(key) > MaxKeyLen {
		return fmt.Errorf("key is %d bytes, more than %d: %w", len(key), MaxKeyLen, sdk.ErrInvalidArgument)
	}
	return nil
}

func (k *kvServer) Get(ctx context.Context, req *pb.KVGetRequest) (*pb.KVGetResponse, error) {
	if err := checkKey(req.GetKey()); err != nil {
		return nil, err
	}
	v, err := k.kv.Get(ctx, req.GetKey())
	if err != nil {
		return nil, err
	}
	return &pb.KVGetResponse{Value: v}, nil
}

func (k *kvServer) Put(ctx context.Context, req *pb.KVPutRequest) (*pb.KVPutResponse, error) {
	if err := checkKey(req.GetKey()); err != nil {
		return nil, err
	}
	if len(req.GetValue()) > MaxValueLen {
		return nil, fmt.Errorf("value is %d bytes, more than %d: %w", len(req.GetValue()), MaxValueLen, sdk.ErrInvalidArgument)
	}
	if req.GetTtlSeconds() < 0 {
		return nil, fmt.Errorf("ttl_seconds is negative: %w", sdk.ErrInvalidArgument)
	}
	ttl := time.Duration(req.GetTtlSeconds()) * time.Second
	if err := k.kv.Put(ctx, req.GetKey(), req.GetValue(), ttl); err != nil {
		return nil, err
	}
	return &pb.KVPutResponse{}, nil
}

func (k *kvServer) Delete(ctx context.Context, req *pb.KVDeleteRequest) (*pb.KVDeleteResponse, error) {
	if err := checkKey(req.GetKey()); err != nil {
		return nil, err
	}
	if err := k.kv.Delete(ctx, req.GetKey()); err != nil {
		return nil, err
	}
	return &pb.KVDeleteResponse{}, nil
}

func (k *kvServer) List(ctx context.Context, req *pb.KVListRequest) (*pb.KVListResponse, error) {
	limit := int(req.GetLimit())
	if limit <= 0 || limit > MaxListLimit {
		limit = MaxListLimit
	}
	entries, more, err := k.kv.List(ctx, req.GetPrefix(), req.GetStartAfter(), limit)
	if err != nil {
		return nil, err
	}
	return &pb.KVListResponse{More: more, Entries: convert.KVEntriesPB(entries)}, nil
}

type eventsServer struct {
	pb.UnimplementedHostEventsServer
	sink EventSink
}

func (e *eventsServer) Emit(ctx context.Context, req *pb.EmitRequest) (*pb.EmitResponse, error) {
	if req.GetEvent().GetType() == "" {
		return nil, fmt.Errorf("event type is required: %w", sdk.ErrInvalidArgument)
	}
	ev := convert.Event(req.GetEvent())
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	if err := e.sink.Emit(ctx, ev); err != nil {
		return nil, err
	}
	return &pb.EmitResponse{}, nil
}
