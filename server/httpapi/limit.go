package httpapi

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// idleLimiter is how long a key's bucket is kept unused before it is
// dropped (a new one starts full, which is what an idle bucket is anyway).
const idleLimiter = 10 * time.Minute

// limiter keeps one token bucket per key (a device id or an IP address).
type limiter struct {
	r     rate.Limit
	burst int
	mu    sync.Mutex
	m     map[string]*bucket
	stop  chan struct{}
}

type bucket struct {
	l    *rate.Limiter
	seen time.Time
}

// newLimiter returns a limiter; a rate of 0 allows everything.
func newLimiter(perSecond float64, burst int) *limiter {
	l := &limiter{r: rate.Limit(perSecond), burst: burst, m: make(map[string]*bucket), stop: make(chan struct{})}
	if perSecond > 0 {
		go l.sweep()
	}
	return l
}

func (l *limiter) allow(key string) bool {
	if l.r <= 0 {
		return true
	}
	now := time.Now()
	l.mu.Lock()
	b := l.m[key]
	if b == nil {
		b = &bucket{l: rate.NewLimiter(l.r, l.burst)}
		l.m[key] = b
	}
	b.seen = now
	l.mu.Unlock()
	return b.l.AllowN(now, 1)
}

func (l *limiter) sweep() {
	t := time.NewTicker(idleLimiter / 2)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case now := <-t.C:
			l.mu.Lock()
			for k, b := range l.m {
				if now.Sub(b.seen) > idleLimiter {
					delete(l.m, k)
				}
			}
			l.mu.Unlock()
		}
	}
}

func (l *limiter) close() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
}
