package mls

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// minParallel is the least number of items worth spreading over workers.
const minParallel = 8

// parallel calls f(0), …, f(n-1) on up to GOMAXPROCS goroutines, for
// independent work such as verifying the signatures of many KeyPackages
// or sealing a path secret to many nodes. Each f(i) may write only what
// belongs to index i.
//
// The result does not depend on scheduling: it is the error of the lowest
// index that fails, exactly what calling f in order and stopping at the
// first error would return. Indices are handed out in increasing order,
// so when some f(j) fails every index below j has been started and is
// finished before parallel returns; workers then start nothing new.
// Every goroutine has ended when parallel returns.
//
// Fewer than minParallel items run in order on the caller's goroutine:
// starting workers costs more than it saves there, and small groups then
// draw randomness in a fixed order (which the fuzz fixtures rely on).
func parallel(n int, f func(i int) error) error {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 || n < minParallel {
		for i := range n {
			if err := f(i); err != nil {
				return err
			}
		}
		return nil
	}
	errs := make([]error, n)
	var next atomic.Int64
	var failed atomic.Bool
	work := func() {
		for !failed.Load() {
			i := int(next.Add(1) - 1)
			if i >= n {
				return
			}
			if errs[i] = f(i); errs[i] != nil {
				failed.Store(true)
			}
		}
	}
	var wg sync.WaitGroup
	for range workers - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
