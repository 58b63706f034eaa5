package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"

	"github.com/hush-chat/hush/internal/mlsinterop"
)

func init() {
	commands["mls-interop"] = command{
		summary: "serve the MLS interop harness's MLSClient gRPC service",
		run:     runMLSInterop,
	}
}

// runMLSInterop serves the MLSClient service of the MLS interoperability
// test harness until ctx is cancelled (SIGINT, SIGTERM), then stops
// gracefully. It prints the address it listens on, which tells the port
// chosen for --port 0.
func runMLSInterop(ctx context.Context, stdout, stderr io.Writer, args []string) error {
	fs := flag.NewFlagSet("hush mls-interop", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := fs.Int("port", 50051, "TCP port to listen on; 0 picks a free one")
	addr := fs.String("addr", "127.0.0.1", "host or IP address to listen on")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 || *port < 0 || *port > 65535 {
		fmt.Fprintln(stderr, "usage: hush mls-interop [--addr HOST] [--port PORT]")
		return errUsage
	}
	lis, err := net.Listen("tcp", net.JoinHostPort(*addr, strconv.Itoa(*port)))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "mls-interop: listening on %s\n", lis.Addr())
	return mlsinterop.Serve(ctx, lis)
}
