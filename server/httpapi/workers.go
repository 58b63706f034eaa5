package httpapi

import (
	"sync/atomic"
	"time"
)

const (
	// maxIdleWorkers bounds the workers that wait for a job: enough for
	// a message that wakes a large group's sessions at once.
	maxIdleWorkers = 256
	// retireInterval: workers that no job needed for that long end.
	retireInterval = time.Second
)

// Workers run the sessions' short jobs (a push, a burst of reads) on
// goroutines that outlive a job, so that the stack one job grew serves
// the next: with a goroutine per job, growing fresh stacks
// (runtime.newstack, copystack) took 6 % of the server's CPU while it
// pushed into a 50-member group. A job goes only to a worker that is
// waiting for one; when none is, it gets a goroutine of its own, as
// before, which then waits for more, so no job waits behind another. At
// most maxIdleWorkers wait, and the sweep retires them once a
// retireInterval passes without a job for them, or the last session
// ends: idle connections hold no goroutine.
var workers struct {
	jobs chan func() // unbuffered: a send succeeds only into a waiting worker
	idle atomic.Int32
	used atomic.Bool // a waiting worker took a job since the last retirement check
}

func init() { workers.jobs = make(chan func()) }

// runJob runs f on a waiting worker, or on a new goroutine that then
// waits for more jobs.
func runJob(f func()) {
	select {
	case workers.jobs <- f:
		workers.used.Store(true)
		return
	default:
	}
	live.mu.Lock()
	stop := live.stop
	live.mu.Unlock()
	go work(f, stop)
}

// work runs f, then the jobs handed to it, until it is retired (handed
// nil) or stop is closed, while no more than maxIdleWorkers others wait.
func work(f func(), stop <-chan struct{}) {
	for {
		f()
		if stop == nil || workers.idle.Add(1) > maxIdleWorkers {
			if stop != nil {
				workers.idle.Add(-1)
			}
			return
		}
		select {
		case f = <-workers.jobs:
			workers.idle.Add(-1)
			if f == nil {
				return
			}
		case <-stop:
			workers.idle.Add(-1)
			return
		}
	}
}

// retireIdleWorkers ends the waiting workers if none took a job since it
// last ran.
func retireIdleWorkers() {
	if workers.used.Swap(false) {
		return
	}
	for workers.idle.Load() > 0 {
		select {
		case workers.jobs <- nil:
		default:
			return // the rest are between jobs, or gone
		}
	}
}
