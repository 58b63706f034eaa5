package mlsinterop

import (
	"context"
	"errors"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hush-chat/hush/internal/mlsinterop/pb"
)

// NewGRPCServer returns a gRPC server offering a fresh MLSClient service.
// A handler that panics fails its call with codes.Internal instead of
// taking the process down.
func NewGRPCServer(opts ...grpc.ServerOption) *grpc.Server {
	opts = append(opts, grpc.ChainUnaryInterceptor(recoverPanics))
	gs := grpc.NewServer(opts...)
	pb.RegisterMLSClientServer(gs, NewServer())
	return gs
}

// Serve serves the MLSClient service on lis until ctx is cancelled, then
// stops gracefully: calls in flight complete, new ones are refused.
func Serve(ctx context.Context, lis net.Listener) error {
	gs := NewGRPCServer()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		gs.GracefulStop()
	}()
	err := gs.Serve(lis)
	cancel()
	<-stopped
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// recoverPanics turns a panic in a handler into an Internal error. The
// panic's value is not reported: it could hold secrets.
func recoverPanics(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if recover() != nil {
			resp, err = nil, status.Error(codes.Internal, "internal error")
		}
	}()
	return handler(ctx, req)
}
