// Package rpc holds the gRPC settings every Berth plugin connection uses,
// on the plugin's side and the host's: message size limits, default
// deadlines, error mapping and panic recovery.
package rpc

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"
	"time"

	"github.com/berthgw/berth/sdk/internal/rpcerr"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// MaxMessageSize caps every gRPC message in both directions, on both sides.
// 16 MiB is far above the largest message the protocol carries in normal
// use (a kubeconfig or a webhook body is kilobytes, a zone of ten thousand
// records about a megabyte) and low enough that a confused or hostile peer
// cannot make the other side allocate without bound. gRPC's own default
// receive limit (4 MiB) is too tight for big zones; go-plugin's client
// default (2 GiB) is no limit at all.
const MaxMessageSize = 16 << 20

// DefaultCallTimeout is the deadline given to a unary call whose context has
// none, so that a stuck plugin (or host) cannot hang its caller forever.
// Streams get no default: WatchOperation runs as long as the operation.
const DefaultCallTimeout = 30 * time.Second

// ServerOptions returns the options for a gRPC server that serves Berth
// services: size limits, panic recovery and error mapping.
func ServerOptions(logger hclog.Logger) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxMessageSize),
		grpc.MaxSendMsgSize(MaxMessageSize),
		grpc.ChainUnaryInterceptor(unaryServer(logger)),
		grpc.ChainStreamInterceptor(streamServer(logger)),
	}
}

// DialOptions returns the options for a client of Berth services: size
// limits, a default deadline of timeout (DefaultCallTimeout if zero) for
// unary calls, and mapping of status errors back to the SDK's kinds.
func DialOptions(timeout time.Duration) []grpc.DialOption {
	if timeout <= 0 {
		timeout = DefaultCallTimeout
	}
	return []grpc.DialOption{
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(MaxMessageSize),
			grpc.MaxCallSendMsgSize(MaxMessageSize),
		),
		grpc.WithChainUnaryInterceptor(unaryClient(timeout)),
		grpc.WithChainStreamInterceptor(streamClient),
	}
}

func unaryServer(logger hclog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer recoverTo(logger, info.FullMethod, &err)
		resp, err = handler(ctx, req)
		return resp, rpcerr.ToStatus(err)
	}
}

func streamServer(logger hclog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer recoverTo(logger, info.FullMethod, &err)
		return rpcerr.ToStatus(handler(srv, ss))
	}
}

// recoverTo turns a panic in a handler into an INTERNAL error for that one
// call: one bad request must not take down every capability of the plugin
// (or, on the host side, the gateway).
func recoverTo(logger hclog.Logger, method string, err *error) {
	if r := recover(); r != nil {
		if logger != nil {
			logger.Error("panic in gRPC handler", "method", method, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
		*err = status.Errorf(codes.Internal, "%s: panic: %v", method, r)
	}
}

func unaryClient(timeout time.Duration) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		return rpcerr.FromStatus(invoker(ctx, method, req, reply, cc, opts...))
	}
}

func streamClient(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, rpcerr.FromStatus(err)
	}
	return mappedStream{s}, nil
}

// mappedStream maps the errors a client stream returns, keeping io.EOF
// (the normal end of a stream) as it is.
type mappedStream struct{ grpc.ClientStream }

func (s mappedStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err == io.EOF {
		return err
	}
	return rpcerr.FromStatus(err)
}

func (s mappedStream) SendMsg(m any) error {
	err := s.ClientStream.SendMsg(m)
	if err == io.EOF {
		return err
	}
	return rpcerr.FromStatus(err)
}
