package main

import (
	"bufio"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/hush-chat/hush/internal/mlsinterop"
	"github.com/hush-chat/hush/internal/mlsinterop/pb"
)

func TestMLSInteropFlags(t *testing.T) {
	for _, args := range [][]string{
		{"mls-interop", "--port", "70000"},
		{"mls-interop", "--port", "-1"},
		{"mls-interop", "extra"},
		{"mls-interop", "--nope"},
	} {
		if code := run(context.Background(), io.Discard, io.Discard, args); code != 2 {
			t.Errorf("%q: exit code %d, want 2", args, code)
		}
	}
}

// TestMLSInteropServes runs the command on a free port, asks the service
// its name, and stops it by cancelling its context.
func TestMLSInteropServes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, w := io.Pipe()
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, w, io.Discard, []string{"mls-interop", "--addr", "127.0.0.1", "--port", "0"})
		w.Close()
	}()
	lines := bufio.NewScanner(out)
	if !lines.Scan() {
		t.Fatal("no output")
	}
	go io.Copy(io.Discard, out)
	addr, ok := strings.CutPrefix(lines.Text(), "mls-interop: listening on ")
	if !ok {
		t.Fatalf("first line %q", lines.Text())
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	defer rcancel()
	name, err := pb.NewMLSClientClient(conn).Name(rctx, &pb.NameRequest{})
	if err != nil || name.GetName() != mlsinterop.Name {
		t.Fatalf("Name: %q, %v", name.GetName(), err)
	}
	cancel()
	select {
	case code := <-exit:
		if code != 0 {
			t.Fatalf("exit code %d after cancellation", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the service did not stop on cancellation")
	}
}
