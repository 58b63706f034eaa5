package mls

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// TestParallel checks that parallel runs every index once and returns the
// error of the lowest failing index, having run every index below it.
func TestParallel(t *testing.T) {
	for _, n := range []int{0, 1, 2, 7, 1000} {
		var ran = make([]atomic.Int32, n)
		if err := parallel(n, func(i int) error { ran[i].Add(1); return nil }); err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		for i := range ran {
			if ran[i].Load() != 1 {
				t.Fatalf("n=%d: index %d ran %d times", n, i, ran[i].Load())
			}
		}
	}
	// Slow work on several workers, so that neighbouring indices fail at
	// the same time.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	for _, fail := range [][]int{{0}, {999}, {3, 500}, {10, 11, 12, 900}} {
		ran := make([]atomic.Int32, 1000)
		err := parallel(1000, func(i int) error {
			ran[i].Add(1)
			time.Sleep(20 * time.Microsecond)
			for _, f := range fail {
				if i == f {
					return fmt.Errorf("index %d", i)
				}
			}
			return nil
		})
		if want := fmt.Sprintf("index %d", fail[0]); err == nil || err.Error() != want {
			t.Errorf("fail at %v: err = %v, want %s", fail, err, want)
		}
		for i := range fail[0] {
			if ran[i].Load() != 1 {
				t.Errorf("fail at %v: index %d ran %d times", fail, i, ran[i].Load())
			}
		}
	}
	sentinel := errors.New("sentinel")
	if err := parallel(1, func(int) error { return sentinel }); err != sentinel {
		t.Errorf("one index: err = %v", err)
	}
}
