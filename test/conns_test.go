package test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/hush-chat/hush/internal/loadgen"
	"github.com/hush-chat/hush/server"
)

// An idle push connection holds no goroutine on the server: the reads wait
// in the poller, the pushes in the Feed's callback. 100 connections are
// held by raw clients (no goroutine of their own either), and the
// process's goroutines come back to what they were before them; each
// connection still answers a ping.
func TestIdleConnectionsHoldNoGoroutine(t *testing.T) {
	ts := start(t, server.Options{DataDir: t.TempDir()})
	const n = 100
	cs := make([]*client, n)
	for i := range cs {
		cs[i] = register(t, ts)
	}
	httpClient.CloseIdleConnections()
	settle := func(limit int) int {
		var g int
		for range 300 { // the last short-lived workers finish
			if g = runtime.NumGoroutine(); g <= limit {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		return g
	}
	base := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range cs {
		cn, err := loadgen.DialIdle(ctx, ts.URL(), c.token, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer cn.Close()
		if err := loadgen.Ping(cn); err != nil {
			t.Fatal(err)
		}
	}
	httpClient.CloseIdleConnections()
	// A few may come and go (the poll wheel, the idle sweep), never one
	// per connection.
	if g := settle(base + 10); g > base+10 {
		t.Fatalf("%d goroutines with %d idle connections, %d before them", g, n, base)
	}
}
