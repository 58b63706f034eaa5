//go:build unix

package mls

import (
	"flag"
	"os"
	"path/filepath"
	"runtime/pprof"
	"testing"
)

// TestProfileGroupOps writes CPU profiles of the group operations of
// bench_test.go at N members, the operation alone: the fixture is built
// first and each state is restored before the profile starts, so neither
// shows up. It runs only when -mls.profile names a directory:
//
//	go test ./mls/ -run TestProfileGroupOps -mls.profile /tmp/prof -mls.profile-n 1000
//	go tool pprof -top mls.test /tmp/prof/add-process.pprof
var (
	profileDir = flag.String("mls.profile", "", "write CPU profiles of the group operations to this directory")
	profileN   = flag.Int("mls.profile-n", 1000, "group size for -mls.profile")
)

func TestProfileGroupOps(t *testing.T) {
	if *profileDir == "" {
		t.Skip("no -mls.profile directory")
	}
	if err := os.MkdirAll(*profileDir, 0o755); err != nil {
		t.Fatal(err)
	}
	var fx *benchFixture
	testing.Benchmark(func(b *testing.B) {
		b.N = 1
		fx = buildBenchGroup(b, *profileN)
	})
	if fx == nil {
		t.Fatal("fixture not built")
	}
	const runs = 8
	// Each profile spans k runs of the operation; the k states are
	// restored before it starts.
	run := func(name string, k int, setup func() *Group, op func(*Group)) {
		f, err := os.Create(filepath.Join(*profileDir, name+".pprof"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		gs := make([]*Group, k)
		for i := range gs {
			gs[i] = setup()
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		for _, g := range gs {
			op(g)
		}
		pprof.StopCPUProfile()
	}
	process := func(g *Group, data []byte) {
		m, err := UnmarshalMLSMessage(data)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := g.Process(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Merge(ev.(*StagedCommit)); err != nil {
			t.Fatal(err)
		}
	}
	load := func(data []byte) func() *Group {
		return func() *Group {
			g, err := UnmarshalGroup(data, fx.cfg)
			if err != nil {
				t.Fatal(err)
			}
			return g
		}
	}
	none := func() *Group { return nil }
	run("add-commit", runs, load(fx.aliceBase), func(g *Group) {
		if _, err := g.Commit(CommitOptions{Add: fx.adds}); err != nil {
			t.Fatal(err)
		}
	})
	run("add-process", runs, load(fx.bobBase), func(g *Group) { process(g, fx.addCommit) })
	run("welcome", runs, none, func(*Group) {
		if _, err := Join(fx.welcome, fx.joiner, JoinOptions{RatchetTree: fx.tree, Config: fx.cfg}); err != nil {
			t.Fatal(err)
		}
	})
	for _, shape := range []string{"sparse", "full"} {
		run("update-commit-"+shape, runs, load(fx.alice[shape]), func(g *Group) {
			if _, err := g.Commit(CommitOptions{ForcePath: true}); err != nil {
				t.Fatal(err)
			}
		})
		run("update-process-"+shape, 4*runs, load(fx.bob[shape]), func(g *Group) { process(g, fx.update[shape]) })
	}
	alice, bob := load(fx.alice["sparse"])(), load(fx.bob["sparse"])()
	msg := make([]byte, 100)
	run("app-message", 1, none, func(*Group) {
		for i := 0; i < 20000; i++ {
			ct, err := alice.Encrypt(msg, nil)
			if err != nil {
				t.Fatal(err)
			}
			data, err := ct.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			m, err := UnmarshalMLSMessage(data)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := bob.Process(m); err != nil {
				t.Fatal(err)
			}
		}
	})
}
