//go:build unix

package mls

import (
	"flag"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Group-level benchmarks, suite 0x0001, for groups of 10, 100 and 1,000
// members (and 10,000 with -mls.bench-10k). Each size's fixture is built
// once and shared by every benchmark; states are restored from their saved
// form before each timed operation, outside the timer, so that every
// iteration starts from the same state.
//
// The group is alice (leaf 0) and bob (leaf 1), to whom alice adds the
// N-2 others in one commit (Add proposals by value, no UpdatePath, as an
// Add-only commit needs none). New members get the ratchet tree out of
// band (JoinOptions.RatchetTree), not inside the Welcome.
//
//	BenchmarkGroupAddCommit      alice commits the N-2 Adds, Welcome included
//	BenchmarkGroupAddProcess     bob processes and merges that commit
//	BenchmarkGroupWelcome        a new member joins from the Welcome
//	BenchmarkGroupUpdateCommit   alice commits with ForcePath, in the sparse
//	                             tree right after the bulk add and in a full tree
//	BenchmarkGroupUpdateProcess  bob processes and merges that commit
//	BenchmarkGroupAppMessage     alice encrypts 100 bytes, bob decrypts them
//
// The full tree (every parent node set, no unmerged leaves) is what the
// group looks like once every member has committed an update. Having each
// member commit in turn costs O(n²) processing to build, so the fixture
// builds it at the tree level instead: every second leaf creates an update
// path on a shared copy of the tree (which sets every parent node, each
// with a valid parent hash), and alice and bob receive the private keys of
// their direct paths. That is the state a real sequence of commits from
// those members would leave, minus the epochs in between.

// Besides wall time (ns/op), each benchmark reports cpu-ms/op: the CPU
// time the process spent in the timed sections (all threads, GC
// included), read with getrusage. On a machine shared with other work the
// wall time includes waiting for a core; the CPU time does not.

var bench10k = flag.Bool("mls.bench-10k", false, "also run the group benchmarks with 10,000 members")

func benchSizes() []int {
	if *bench10k {
		return []int{10, 100, 1000, 10000}
	}
	return []int{10, 100, 1000}
}

// benchFixture is one group size's shared state.
type benchFixture struct {
	n   int
	cfg Config
	// Before the bulk add: the group of alice and bob.
	aliceBase, bobBase []byte
	addCommit          []byte // alice's commit adding the others, encoded
	welcome            *Welcome
	tree               []byte // the ratchet tree after the bulk add
	joiner             *KeyPackagePrivate
	adds               []*KeyPackage
	// After the bulk add (sparse) and with a full tree.
	alice, bob map[string][]byte
	// alice's ForcePath commit in each tree, encoded.
	update map[string][]byte
}

var (
	benchMu       sync.Mutex
	benchFixtures = map[int]*benchFixture{}
)

// benchGroup returns the fixture of size n, building it on first use.
func benchGroup(b *testing.B, n int) *benchFixture {
	b.Helper()
	benchMu.Lock()
	defer benchMu.Unlock()
	if fx, ok := benchFixtures[n]; ok {
		return fx
	}
	b.StopTimer()
	defer b.StartTimer()
	fx := buildBenchGroup(b, n)
	benchFixtures[n] = fx
	return fx
}

func buildBenchGroup(b *testing.B, n int) *benchFixture {
	fx := &benchFixture{n: n, alice: map[string][]byte{}, bob: map[string][]byte{}, update: map[string][]byte{}}
	alice := newTestClient(b, DefaultCipherSuite, "alice")
	ga, err := CreateGroup(alice.key, BasicCredential([]byte("alice")), CreateGroupOptions{})
	if err != nil {
		b.Fatal(err)
	}
	tg := &testGroup{t: b, members: []*Group{ga}}
	bobKP := newTestClient(b, DefaultCipherSuite, "bob").keyPackage(b)
	res := tg.commit(0, CommitOptions{Add: []*KeyPackage{bobKP.KeyPackage}})
	tg.members = append(tg.members, tg.join(res.Welcome, bobKP))
	fx.aliceBase, fx.bobBase = mustSave(b, tg.members[0]), mustSave(b, tg.members[1])

	sigKeys := []*SignatureKey{alice.key, bobKP.sigKey}
	for i := 2; i < n; i++ {
		kp := newTestClient(b, DefaultCipherSuite, fmt.Sprintf("member %d", i)).keyPackage(b)
		fx.adds = append(fx.adds, kp.KeyPackage)
		sigKeys = append(sigKeys, kp.sigKey)
		if fx.joiner == nil {
			fx.joiner = kp
		}
	}
	res = tg.commit(0, CommitOptions{Add: fx.adds})
	fx.addCommit = mustMarshal(b, res.Commit)
	fx.welcome = res.Welcome.Welcome
	fx.tree = tg.members[0].RatchetTree()
	fx.alice["sparse"], fx.bob["sparse"] = mustSave(b, tg.members[0]), mustSave(b, tg.members[1])
	fillTree(b, tg.members[0], tg.members[1], sigKeys)
	fx.alice["full"], fx.bob["full"] = mustSave(b, tg.members[0]), mustSave(b, tg.members[1])
	for _, shape := range []string{"sparse", "full"} {
		g := mustLoad(b, fx.alice[shape], fx.cfg)
		r, err := g.Commit(CommitOptions{ForcePath: true})
		if err != nil {
			b.Fatal(err)
		}
		fx.update[shape] = mustMarshal(b, r.Commit)
	}
	return fx
}

// fillTree gives alice and bob a full tree: every second leaf, in order,
// creates an update path on a shared copy of the tree, which sets every
// parent node; alice and bob keep the private keys of their direct paths
// (and alice her new leaf key). Both then agree on the new tree hash.
func fillTree(b *testing.B, alice, bob *Group, sigKeys []*SignatureKey) {
	tree := alice.tree.clone()
	nodeKeys := map[nodeIndex][]byte{}
	aliceLeaf := alice.priv.leaf
	for i := leafIndex(0); uint32(i) < tree.numLeaves() && int(i) < len(sigKeys); i += 2 {
		p, err := tree.createUpdatePath(i, tree.leaf(i), sigKeys[i], alice.ctx.GroupID)
		if err != nil {
			b.Fatal(err)
		}
		p.wipe()
		for x, k := range p.priv.nodes {
			nodeKeys[x] = k
		}
		if i == 0 {
			aliceLeaf = p.priv.leaf
		}
	}
	for _, m := range []struct {
		g    *Group
		leaf []byte
	}{{alice, aliceLeaf}, {bob, bob.priv.leaf}} {
		priv, err := newTreePrivate(tree, m.g.priv.self, m.leaf)
		if err != nil {
			b.Fatal(err)
		}
		for _, x := range directPath(m.g.priv.self.node(), tree.numLeaves()) {
			if tree.parentNode(x) == nil {
				b.Fatalf("node %d of the full tree is blank", x)
			}
			priv.nodes[x] = nodeKeys[x]
		}
		m.g.priv, m.g.tree = priv, tree.clone()
		m.g.ctx.TreeHash = tree.treeHash()
		m.g.ctxRaw = mustEncode(&m.g.ctx)
	}
}

func mustSave(b testing.TB, g *Group) []byte {
	data, err := g.MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func mustLoad(b testing.TB, data []byte, cfg Config) *Group {
	g, err := UnmarshalGroup(data, cfg)
	if err != nil {
		b.Fatal(err)
	}
	return g
}

func mustMarshal(b testing.TB, m *MLSMessage) []byte {
	data, err := m.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// cpuClock accumulates the process's CPU time over timed sections.
type cpuClock struct {
	total, start time.Duration
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (c *cpuClock) Start() { c.start = cpuTime() }
func (c *cpuClock) Stop()  { c.total += cpuTime() - c.start }

// report adds the cpu-ms/op metric.
func (c *cpuClock) report(b *testing.B) {
	b.ReportMetric(c.total.Seconds()*1000/float64(b.N), "cpu-ms/op")
}

// timed runs setup (untimed) and op (timed, wall and CPU) b.N times.
func timed(b *testing.B, setup func() *Group, op func(g *Group)) {
	var cpu cpuClock
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		g := setup()
		b.StartTimer()
		cpu.Start()
		op(g)
		cpu.Stop()
	}
	cpu.report(b)
}

// forSizes runs f as a sub-benchmark for each group size.
func forSizes(b *testing.B, f func(b *testing.B, fx *benchFixture)) {
	for _, n := range benchSizes() {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) { f(b, benchGroup(b, n)) })
	}
}

// processAndMerge decodes data, processes it at g and merges the commit.
func processAndMerge(b *testing.B, g *Group, data []byte) {
	m, err := UnmarshalMLSMessage(data)
	if err != nil {
		b.Fatal(err)
	}
	ev, err := g.Process(m)
	if err != nil {
		b.Fatal(err)
	}
	if err := g.Merge(ev.(*StagedCommit)); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkGroupAddCommit(b *testing.B) {
	forSizes(b, func(b *testing.B, fx *benchFixture) {
		timed(b, func() *Group { return mustLoad(b, fx.aliceBase, fx.cfg) }, func(g *Group) {
			if _, err := g.Commit(CommitOptions{Add: fx.adds}); err != nil {
				b.Fatal(err)
			}
		})
	})
}

func BenchmarkGroupAddProcess(b *testing.B) {
	forSizes(b, func(b *testing.B, fx *benchFixture) {
		timed(b, func() *Group { return mustLoad(b, fx.bobBase, fx.cfg) }, func(g *Group) {
			processAndMerge(b, g, fx.addCommit)
		})
	})
}

func BenchmarkGroupWelcome(b *testing.B) {
	forSizes(b, func(b *testing.B, fx *benchFixture) {
		timed(b, func() *Group { return nil }, func(*Group) {
			if _, err := Join(fx.welcome, fx.joiner, JoinOptions{RatchetTree: fx.tree, Config: fx.cfg}); err != nil {
				b.Fatal(err)
			}
		})
	})
}

func BenchmarkGroupUpdateCommit(b *testing.B) {
	for _, shape := range []string{"sparse", "full"} {
		b.Run(shape, func(b *testing.B) {
			forSizes(b, func(b *testing.B, fx *benchFixture) {
				timed(b, func() *Group { return mustLoad(b, fx.alice[shape], fx.cfg) }, func(g *Group) {
					if _, err := g.Commit(CommitOptions{ForcePath: true}); err != nil {
						b.Fatal(err)
					}
				})
			})
		})
	}
}

func BenchmarkGroupUpdateProcess(b *testing.B) {
	for _, shape := range []string{"sparse", "full"} {
		b.Run(shape, func(b *testing.B) {
			forSizes(b, func(b *testing.B, fx *benchFixture) {
				timed(b, func() *Group { return mustLoad(b, fx.bob[shape], fx.cfg) }, func(g *Group) {
					processAndMerge(b, g, fx.update[shape])
				})
			})
		})
	}
}

// BenchmarkGroupAppMessage measures pairs of encrypting 100 bytes at alice
// and decrypting them at bob, encoding and decoding included.
func BenchmarkGroupAppMessage(b *testing.B) {
	forSizes(b, func(b *testing.B, fx *benchFixture) {
		alice, bob := mustLoad(b, fx.alice["sparse"], fx.cfg), mustLoad(b, fx.bob["sparse"], fx.cfg)
		msg := make([]byte, 100)
		var cpu cpuClock
		b.ResetTimer()
		cpu.Start()
		for i := 0; i < b.N; i++ {
			ct, err := alice.Encrypt(msg, nil)
			if err != nil {
				b.Fatal(err)
			}
			data, err := ct.Marshal()
			if err != nil {
				b.Fatal(err)
			}
			m, err := UnmarshalMLSMessage(data)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := bob.Process(m); err != nil {
				b.Fatal(err)
			}
		}
		cpu.Stop()
		cpu.report(b)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
		b.ReportMetric(float64(b.N)/cpu.total.Seconds(), "pairs/cpu-s")
	})
}

// BenchmarkGroupPrimitives measures the operations that bound the group
// benchmarks, on the same machine in the same run: an Ed25519 signature
// and its verification (every message and every leaf and KeyPackage
// carries one) and an HPKE encryption to an X25519 key (one per Welcome
// recipient and per resolution node of an UpdatePath).
func BenchmarkGroupPrimitives(b *testing.B) {
	s := suites[DefaultCipherSuite]
	key, err := GenerateSignatureKey(DefaultCipherSuite)
	if err != nil {
		b.Fatal(err)
	}
	msg := make([]byte, 200)
	sig, err := key.signWithLabel("bench", msg)
	if err != nil {
		b.Fatal(err)
	}
	_, pub, err := s.generateKeyPair()
	if err != nil {
		b.Fatal(err)
	}
	loop := func(b *testing.B, op func()) {
		var cpu cpuClock
		cpu.Start()
		for b.Loop() {
			op()
		}
		cpu.Stop()
		cpu.report(b)
	}
	b.Run("sign", func(b *testing.B) {
		loop(b, func() { key.signWithLabel("bench", msg) })
	})
	b.Run("verify", func(b *testing.B) {
		loop(b, func() {
			if !s.verifyWithLabel(key.Public(), sig, "bench", msg) {
				b.Fatal("invalid signature")
			}
		})
	})
	// The primitives one application message pair needs at the least
	// (§6.3, §9.1): a signature and its verification over a message of
	// the size of the FramedContentTBS, on each side the three
	// DeriveTreeSecret of one ratchet step and the two ExpandWithLabel of
	// the sender data key and nonce, and four AEAD operations (content and
	// sender data, sealed and opened), each with a fresh key.
	b.Run("app-message-floor", func(b *testing.B) {
		secret, sample := make([]byte, 32), make([]byte, 32)
		tbs, content := make([]byte, 300), make([]byte, 170)
		loop(b, func() {
			sig, err := key.sign(tbs)
			if err != nil || !s.sig.verify(key.Public(), tbs, sig) {
				b.Fatal("signature", err)
			}
			for range 2 {
				k := s.deriveTreeSecret(secret, "key", 1, s.nk)
				n := s.deriveTreeSecret(secret, "nonce", 1, s.nn)
				s.deriveTreeSecret(secret, "secret", 1, s.nh())
				sk := s.expandWithLabel(secret, "key", sample, s.nk)
				sn := s.expandWithLabel(secret, "nonce", sample, s.nn)
				for _, kn := range [][2][]byte{{k, n}, {sk, sn}} {
					aead, err := s.newAEAD(kn[0])
					if err != nil {
						b.Fatal(err)
					}
					ct := aead.Seal(nil, kn[1], content, sample)
					if _, err := aead.Open(nil, kn[1], ct, sample); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	})
	b.Run("hpke-seal", func(b *testing.B) {
		loop(b, func() {
			if _, _, err := s.encryptWithLabel(pub, "bench", nil, msg[:32]); err != nil {
				b.Fatal(err)
			}
		})
	})
}

// BenchmarkGroupState measures saving and restoring a member's state
// (after the bulk add, full tree), and reports its size.
func BenchmarkGroupState(b *testing.B) {
	b.Run("marshal", func(b *testing.B) {
		forSizes(b, func(b *testing.B, fx *benchFixture) {
			g := mustLoad(b, fx.bob["full"], fx.cfg)
			var cpu cpuClock
			b.ResetTimer()
			cpu.Start()
			for b.Loop() {
				if _, err := g.MarshalBinary(); err != nil {
					b.Fatal(err)
				}
			}
			cpu.Stop()
			cpu.report(b)
			b.ReportMetric(float64(len(fx.bob["full"])), "bytes")
		})
	})
	b.Run("unmarshal", func(b *testing.B) {
		forSizes(b, func(b *testing.B, fx *benchFixture) {
			timed(b, func() *Group { return nil }, func(*Group) { mustLoad(b, fx.bob["full"], fx.cfg) })
		})
	})
}
