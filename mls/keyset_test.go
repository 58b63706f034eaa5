package mls

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
)

// keySetCounts lists every key of s with its count.
func keySetCounts(s keySet) map[string]int {
	out := map[string]int{}
	var walk func(n *keyNode)
	walk = func(n *keyNode) {
		if n == nil {
			return
		}
		if n.children != nil {
			for _, c := range n.children {
				walk(c)
			}
			return
		}
		for _, e := range n.entries {
			out[e.key] = e.count
		}
	}
	walk(s.root)
	return out
}

// TestKeySet checks the persistent multiset against a map: counts after
// random additions and removals, earlier versions left intact, and a set
// built in place equal to one built by add.
func TestKeySet(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	key := func(i int) []byte { return fmt.Appendf(nil, "key %d", i) }
	var s, built keySet
	model := map[string]int{}
	for i := range 3000 {
		s = s.add(key(i), 1)
		built.insert(key(i))
		model[string(key(i))]++
	}
	for i := range 500 { // some keys twice
		s = s.add(key(i), 1)
		built.insert(key(i))
		model[string(key(i))]++
	}
	before := keySetCounts(s)
	if len(before) != len(model) {
		t.Fatalf("%d keys, want %d", len(before), len(model))
	}
	for k, n := range model {
		if before[k] != n || s.count([]byte(k)) != n || built.count([]byte(k)) != n {
			t.Fatalf("count(%q) = %d, %d built, want %d", k, s.count([]byte(k)), built.count([]byte(k)), n)
		}
	}
	if got := keySetCounts(built); len(got) != len(model) {
		t.Fatalf("built in place: %d keys, want %d", len(got), len(model))
	}
	// Remove a random half of the occurrences from a new version.
	next := s
	for range 2000 {
		i := rng.IntN(3000)
		if model[string(key(i))] == 0 {
			continue
		}
		next = next.add(key(i), -1)
		if model[string(key(i))]--; model[string(key(i))] == 0 {
			delete(model, string(key(i)))
		}
	}
	after := keySetCounts(next)
	if len(after) != len(model) {
		t.Fatalf("after removals: %d keys, want %d", len(after), len(model))
	}
	for k, n := range model {
		if next.count([]byte(k)) != n {
			t.Fatalf("after removals: count(%q) = %d, want %d", k, next.count([]byte(k)), n)
		}
	}
	if next.count([]byte("absent")) != 0 {
		t.Error("absent key counted")
	}
	for k, n := range before {
		if s.count([]byte(k)) != n {
			t.Fatalf("earlier version changed: count(%q) = %d, want %d", k, s.count([]byte(k)), n)
		}
	}
}

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
	for _, fail := range [][]int{{0}, {999}, {3, 500}, {10, 11, 12, 900}} {
		ran := make([]atomic.Int32, 1000)
		err := parallel(1000, func(i int) error {
			ran[i].Add(1)
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
