package httpapi

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestWorkers: jobs run, also many at once; the goroutines that ran them
// wait for more, and later jobs reuse them rather than start new ones;
// once no job came for a retirement period they end; and with the last
// session gone (stop closed) they end at once.
func TestWorkers(t *testing.T) {
	stop := make(chan struct{})
	live.mu.Lock()
	if live.stop != nil {
		live.mu.Unlock()
		t.Skip("sessions of another test are live")
	}
	live.stop = stop
	live.mu.Unlock()
	defer func() {
		live.mu.Lock()
		live.stop = nil
		live.mu.Unlock()
	}()

	var ran atomic.Int32
	var wg sync.WaitGroup
	release := make(chan struct{})
	for range 20 {
		wg.Add(1)
		runJob(func() { defer wg.Done(); <-release; ran.Add(1) })
	}
	close(release)
	wg.Wait()
	if ran.Load() != 20 {
		t.Fatalf("%d jobs ran, want 20", ran.Load())
	}
	waitIdle := func(want int32) {
		t.Helper()
		for range 500 {
			if workers.idle.Load() == want {
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
		t.Fatalf("%d workers waiting, want %d", workers.idle.Load(), want)
	}
	waitIdle(20)

	// Later jobs go to the waiting workers: none starts a goroutine.
	workers.used.Store(false)
	for range 5 {
		wg.Add(1)
		runJob(func() { defer wg.Done(); ran.Add(1) })
		wg.Wait()
	}
	waitIdle(20)
	if !workers.used.Load() {
		t.Fatal("jobs did not go to the waiting workers")
	}

	// A retirement check after jobs keeps them; the next, with none
	// since, ends them.
	retireIdleWorkers()
	if n := workers.idle.Load(); n != 20 {
		t.Fatalf("%d workers waiting after a check that followed jobs, want 20", n)
	}
	retireIdleWorkers()
	waitIdle(0)

	// Workers end with the last session.
	hold := make(chan struct{})
	for range 3 {
		runJob(func() { <-hold })
	}
	close(hold)
	waitIdle(3)
	close(stop)
	waitIdle(0)
}
