package mls

import (
	"fmt"
	"math/rand/v2"
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
			out[string(e.key)] = e.count
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
