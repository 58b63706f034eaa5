package sframe

import "errors"

// DefaultReplayWindow is the replay window width, in counter values, that a
// receiver uses unless told otherwise.
const DefaultReplayWindow = 128

// MaxReplayWindow is the widest replay window a receiver accepts. Each KID's
// window costs MaxReplayWindow/8 bytes at most.
const MaxReplayWindow = 4096

// ErrReplay is returned for a frame whose CTR was already accepted under
// the same KID, or that is too far behind the newest accepted CTR for the
// replay window to tell.
var ErrReplay = errors.New("sframe: replayed or too old frame")

// replayWindow is a sliding anti-replay window over counter values in the
// manner of RFC 3711 §3.3.2: it accepts any counter above the highest seen,
// and a counter within size below it once.
type replayWindow struct {
	size uint64
	top  uint64   // highest accepted counter, valid once any is accepted
	any  bool     // whether any counter was accepted
	seen []uint64 // bit c%size set: counter c, in (top-size, top], accepted
}

// replayWindowSize normalizes a replay window option: 0 selects
// DefaultReplayWindow and a negative value disables replay protection
// (size 0).
func replayWindowSize(n int) (int, error) {
	switch {
	case n == 0:
		return DefaultReplayWindow, nil
	case n < 0:
		return 0, nil
	case n > MaxReplayWindow:
		return 0, errors.New("sframe: replay window too wide")
	}
	return n, nil
}

func newReplayWindow(size int) replayWindow {
	return replayWindow{size: uint64(size), seen: make([]uint64, (size+63)/64)}
}

// check reports whether ctr may be accepted. A disabled window accepts all.
func (w *replayWindow) check(ctr uint64) bool {
	switch {
	case w.size == 0 || !w.any || ctr > w.top:
		return true
	case w.top-ctr >= w.size:
		return false
	}
	word, bit := w.slot(ctr)
	return *word&bit == 0
}

// accept records ctr, which check allowed and which authenticated.
func (w *replayWindow) accept(ctr uint64) {
	if w.size == 0 {
		return
	}
	if !w.any || ctr > w.top {
		if !w.any || ctr-w.top >= w.size {
			clear(w.seen)
		} else {
			// Free the slots of the counters that slide out of the window.
			for c := w.top + 1; c < ctr; c++ {
				word, bit := w.slot(c)
				*word &^= bit
			}
		}
		w.top, w.any = ctr, true
	}
	word, bit := w.slot(ctr)
	*word |= bit
}

// slot returns the word and bit that record counter c.
func (w *replayWindow) slot(c uint64) (*uint64, uint64) {
	i := c % w.size
	return &w.seen[i/64], 1 << (i % 64)
}
