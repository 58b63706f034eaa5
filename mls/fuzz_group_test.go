package mls

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/cryptotest"
	"time"

	"golang.org/x/crypto/cryptobyte"
)

// Fuzz targets for the group state machine and the saved-state decoder.
//
// FuzzProcess and FuzzProcessSigned feed messages to alice, a member of a
// live three-member group (alice, bob, carol). The group is built from a
// fixed random seed (testing/cryptotest) and a fixed clock, so that every
// fuzzing worker builds the same group and the seed corpus, made of real
// messages of that group, stays valid: the fuzzer starts from messages
// that alice accepts and mutates them. Run
//
//	go test ./mls/ -run TestWriteFuzzSeeds -mls.write-fuzz-seeds
//
// to write the seed corpora anew after a change to how the group uses
// randomness (TestFuzzFixtureDeterministic says whether that is needed:
// the seeds only help while alice still accepts them).

var writeFuzzSeeds = flag.Bool("mls.write-fuzz-seeds", false, "write the seed corpora of FuzzProcess, FuzzProcessSigned and FuzzUnmarshalGroup")

// fuzzEpochTime is the fixed clock of the fuzz group.
var fuzzEpochTime = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// fuzzFixture is the fuzz group: alice's saved state, which each fuzz run
// restores, the seed messages to her and the keys to sign new ones.
type fuzzFixture struct {
	cfg   Config
	alice []byte
	// alicePriv is alice as restored, for reading membership keys.
	alicePriv *Group
	bob, eve  *SignatureKey
	carol     *SignatureKey
	seeds     []fuzzSeed
	states    map[string][]byte // saved states, seeds of FuzzUnmarshalGroup
}

// fuzzSeed is a message to alice, encoded, with its name in the corpus.
type fuzzSeed struct {
	name string
	msg  []byte
}

var (
	fuzzOnce sync.Once
	fuzzFx   *fuzzFixture
)

// fuzzGroup returns the fuzz group, building it on first use with the
// fixed random seed in force (which needs a *testing.T, hence the lazy
// construction inside the fuzz function).
func fuzzGroup(t *testing.T) *fuzzFixture {
	fuzzOnce.Do(func() {
		cryptotest.SetGlobalRandom(t, 1)
		fuzzFx = buildFuzzGroup(t)
	})
	if fuzzFx == nil {
		t.Fatal("the fuzz group could not be built")
	}
	return fuzzFx
}

func fuzzKeyPackage(t testing.TB, name string) (*SignatureKey, *KeyPackagePrivate) {
	t.Helper()
	key, err := GenerateSignatureKey(DefaultCipherSuite)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := NewKeyPackage(key, KeyPackageOptions{
		Credential: BasicCredential([]byte(name)),
		Now:        func() time.Time { return fuzzEpochTime },
	})
	if err != nil {
		t.Fatal(err)
	}
	return key, kp
}

// buildFuzzGroup creates the group, lets bob commit a full path (so that
// the tree has parent nodes), and collects messages to alice of every
// kind, each sent from a fresh copy of its sender's state.
func buildFuzzGroup(t testing.TB) *fuzzFixture {
	cfg := Config{Now: func() time.Time { return fuzzEpochTime }}
	fx := &fuzzFixture{cfg: cfg, states: map[string][]byte{}}
	aliceKey, err := GenerateSignatureKey(DefaultCipherSuite)
	if err != nil {
		t.Fatal(err)
	}
	alice, err := CreateGroup(aliceKey, BasicCredential([]byte("alice")), CreateGroupOptions{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	var kpb, kpc *KeyPackagePrivate
	fx.bob, kpb = fuzzKeyPackage(t, "bob")
	fx.carol, kpc = fuzzKeyPackage(t, "carol")
	tg := &testGroup{t: t, members: []*Group{alice}}
	res := tg.commit(0, CommitOptions{Add: []*KeyPackage{kpb.KeyPackage, kpc.KeyPackage}, InlineTree: true})
	for _, kp := range []*KeyPackagePrivate{kpb, kpc} {
		g, err := Join(res.Welcome.Welcome, kp, JoinOptions{Config: cfg})
		if err != nil {
			t.Fatal(err)
		}
		tg.members = append(tg.members, g)
	}
	tg.commit(1, CommitOptions{ForcePath: true})
	tg.chat()

	save := func(name string, g *Group) []byte {
		data, err := g.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		fx.states[name] = data
		return data
	}
	fx.alice = save("alice", tg.members[0])
	bobState, carolState := save("bob", tg.members[1]), save("carol", tg.members[2])
	if fx.alicePriv, err = UnmarshalGroup(fx.alice, cfg); err != nil {
		t.Fatal(err)
	}
	fresh := func(state []byte, c Config) *Group {
		g, err := UnmarshalGroup(state, c)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	bob := func() *Group { return fresh(bobState, cfg) }
	carol := func() *Group { return fresh(carolState, cfg) }
	privateCfg := cfg
	privateCfg.EncryptHandshake = true
	_, kpd := fuzzKeyPackage(t, "dave")
	if fx.eve, err = GenerateSignatureKey(DefaultCipherSuite); err != nil {
		t.Fatal(err)
	}

	add := func(name string) func(*MLSMessage, error) {
		return func(m *MLSMessage, err error) {
			if err != nil {
				t.Fatalf("seed %s: %v", name, err)
			}
			data, err := m.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			fx.seeds = append(fx.seeds, fuzzSeed{name, data})
		}
	}
	commit := func(g *Group, o CommitOptions) (*MLSMessage, error) {
		r, err := g.Commit(o)
		if err != nil {
			return nil, err
		}
		return r.Commit, nil
	}
	add("application")(bob().Encrypt([]byte("hello alice"), []byte("aad")))
	add("application-second")(secondMessage(t, carol()))
	add("proposal-update")(bob().ProposeUpdate())
	add("proposal-remove")(carol().ProposeRemove(1))
	add("proposal-add")(bob().ProposeAdd(kpd.KeyPackage))
	add("proposal-gce")(carol().ProposeGroupContextExtensions(Extensions{{Type: ExtRequiredCapabilities, Data: mustEncode(&RequiredCapabilities{})}}))
	add("proposal-private")(fresh(bobState, privateCfg).ProposeUpdate())
	add("commit-path")(commit(bob(), CommitOptions{ForcePath: true}))
	add("commit-add")(commit(carol(), CommitOptions{Add: []*KeyPackage{kpd.KeyPackage}}))
	add("commit-remove")(commit(carol(), CommitOptions{Remove: []uint32{1}}))
	add("commit-private")(commit(fresh(bobState, privateCfg), CommitOptions{ForcePath: true}))
	add("commit-gce")(commit(bob(), CommitOptions{Extensions: Extensions{{Type: ExtRequiredCapabilities, Data: mustEncode(&RequiredCapabilities{Proposals: []ProposalType{ProposalAdd}})}}}))
	byRef := bob()
	up, err := carol().ProposeUpdate()
	add("proposal-update-carol")(up, err)
	if _, err := byRef.Process(roundTrip(t, up)); err != nil {
		t.Fatal(err)
	}
	byRefCommit, err := commit(byRef, CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Two messages in one seed: the proposal, then the commit naming it.
	fx.seeds = append(fx.seeds, fuzzSeed{"commit-by-reference", append(mustEncode(up), mustEncode(byRefCommit)...)})
	gi, err := carol().GroupInfo(true)
	if err != nil {
		t.Fatal(err)
	}
	_, ext, err := ExternalJoin(roundTrip(t, gi), fx.eve, BasicCredential([]byte("eve")), ExternalJoinOptions{Config: cfg})
	add("commit-external")(ext, err)
	wres, err := bob().Commit(CommitOptions{Add: []*KeyPackage{kpd.KeyPackage}})
	if err != nil {
		t.Fatal(err)
	}
	add("welcome")(wres.Welcome, nil)
	add("group-info")(gi, nil)

	// States for FuzzUnmarshalGroup: a pending commit, a removed member.
	withPending := tg.members[0]
	if _, err := withPending.Commit(CommitOptions{ForcePath: true}); err != nil {
		t.Fatal(err)
	}
	save("alice-pending", withPending)
	withPending.DiscardPendingCommit()
	tg.commit(0, CommitOptions{Remove: []uint32{2}})
	save("carol-removed", tg.members[2])
	return fx
}

// secondMessage returns g's second application message, so that a seed
// exercises a generation other than 0.
func secondMessage(t testing.TB, g *Group) (*MLSMessage, error) {
	if _, err := g.Encrypt([]byte("first"), nil); err != nil {
		t.Fatal(err)
	}
	return g.Encrypt([]byte("second"), nil)
}

// processAndCheck processes msgs in turn at a fresh copy of alice and
// checks the contract of Process: on error the state is unchanged, byte
// for byte; on success the state stays usable and encodable.
func processAndCheck(t *testing.T, fx *fuzzFixture, msgs ...*MLSMessage) {
	g, err := UnmarshalGroup(fx.alice, fx.cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		before, err := g.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		ev, err := g.Process(m)
		if err != nil {
			after, merr := g.MarshalBinary()
			if merr != nil || !bytes.Equal(after, before) {
				t.Fatalf("Process failed (%v) and changed the group", err)
			}
			continue
		}
		switch ev := ev.(type) {
		case *ApplicationMessage:
			if _, err := g.Process(m); err == nil {
				t.Fatal("application message accepted twice")
			}
		case *StagedCommit:
			if err := g.Merge(ev); err != nil {
				t.Fatalf("merge of a staged commit: %v", err)
			}
			if g.Active() {
				if _, err := g.Encrypt([]byte("after"), nil); err != nil {
					t.Fatalf("encrypt after the commit: %v", err)
				}
			}
		}
	}
	restore(t, g)
}

// FuzzProcess feeds alice a sequence of messages: the input is their
// encodings one after the other (an MLSMessage delimits itself).
func FuzzProcess(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		fx := fuzzGroup(t)
		msgs, ok := splitMessages(data)
		if !ok {
			return
		}
		processAndCheck(t, fx, msgs...)
	})
}

// maxFuzzMessages bounds how many messages one fuzz input may hold.
const maxFuzzMessages = 4

// splitMessages decodes concatenated MLSMessages.
func splitMessages(data []byte) ([]*MLSMessage, bool) {
	s := cryptobyte.String(data)
	var msgs []*MLSMessage
	for !s.Empty() && len(msgs) < maxFuzzMessages {
		m := new(MLSMessage)
		if !m.unmarshal(&s) {
			return nil, false
		}
		msgs = append(msgs, m)
	}
	return msgs, s.Empty() && len(msgs) > 0
}

// FuzzProcessSigned takes a FramedContent and its confirmation tag, and
// has it signed by the member it names as sender (or by eve, for a new
// member) and tagged with the membership key before alice processes it:
// the mutations reach the validation of proposals and commits behind the
// signature, which the fuzzer could not forge.
func FuzzProcessSigned(f *testing.F) {
	f.Fuzz(func(t *testing.T, content, tag []byte) {
		fx := fuzzGroup(t)
		if m, ok := fx.signed(content, tag); ok {
			processAndCheck(t, fx, m)
		}
	})
}

// signed decodes a FramedContent, signs it as the member it names as
// sender (eve for anyone else) and frames it as a PublicMessage with the
// confirmation tag (for a commit) and alice's membership key.
func (fx *fuzzFixture) signed(content, tag []byte) (*MLSMessage, bool) {
	var c FramedContent
	if decode(content, &c, "FramedContent") != nil {
		return nil, false
	}
	key := fx.eve
	if c.Sender.Type == SenderMember {
		switch c.Sender.Index {
		case 1:
			key = fx.bob
		case 2:
			key = fx.carol
		}
	}
	a := fx.alicePriv
	ac, err := signFramedContent(key, WireFormatPublicMessage, &c, a.ctxRaw)
	if err != nil {
		return nil, false
	}
	if c.ContentType == ContentCommit {
		ac.Auth.ConfirmationTag = tag
	}
	var membership []byte
	if c.Sender.Type == SenderMember {
		membership = a.secrets.membership
	}
	pm, err := protectPublic(a.suite, ac, membership, a.ctxRaw)
	if err != nil {
		return nil, false
	}
	return &MLSMessage{WireFormat: WireFormatPublicMessage, PublicMessage: pm}, true
}

// FuzzUnmarshalGroup decodes arbitrary saved states: decoding never
// panics, what decodes encodes back to the input, and a restored group
// can be used (it encrypts and commits) without panicking.
func FuzzUnmarshalGroup(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := Config{Now: func() time.Time { return fuzzEpochTime }}
		g, err := UnmarshalGroup(data, cfg)
		if err != nil {
			return
		}
		out, err := g.MarshalBinary()
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("restored group encodes differently (%v)", err)
		}
		g.Members()
		if !g.Active() {
			return
		}
		if _, err := g.Encrypt([]byte("x"), nil); err != nil && !g.HasPendingCommit() {
			t.Fatalf("restored group cannot encrypt: %v", err)
		}
		g.DiscardPendingCommit()
		// A commit may fail (a cached proposal may be invalid): it must
		// not panic.
		g.Commit(CommitOptions{ForcePath: true})
	})
}

// TestFuzzSeedsAreAccepted checks that the fuzz group accepts its seed
// messages (all but the Welcome and GroupInfo, which are not group
// messages): the seeds are real messages, not noise.
func TestFuzzSeedsAreAccepted(t *testing.T) {
	fx := fuzzGroup(t)
	for _, s := range fx.seeds {
		g, err := UnmarshalGroup(fx.alice, fx.cfg)
		if err != nil {
			t.Fatal(err)
		}
		msgs, ok := splitMessages(s.msg)
		if !ok {
			t.Fatalf("seed %s does not decode", s.name)
		}
		for _, m := range msgs {
			if _, err = g.Process(m); err != nil {
				break
			}
		}
		if rejected := s.name == "welcome" || s.name == "group-info"; (err != nil) != rejected {
			t.Errorf("seed %s: %v", s.name, err)
		}
		// The same content, signed anew as FuzzProcessSigned does.
		if m := msgs[0]; len(msgs) == 1 && m.WireFormat == WireFormatPublicMessage {
			pm := m.PublicMessage
			sm, ok := fx.signed(mustEncode(&pm.Content), pm.Auth.ConfirmationTag)
			if !ok {
				t.Fatalf("seed %s cannot be signed anew", s.name)
			}
			g, err := UnmarshalGroup(fx.alice, fx.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := g.Process(sm); err != nil {
				t.Errorf("seed %s, signed anew: %v", s.name, err)
			}
		}
	}
}

// TestFuzzFixtureDeterministic builds the fuzz group twice from the same
// random seed: the corpora only stay useful if both are the same.
func TestFuzzFixtureDeterministic(t *testing.T) {
	build := func() *fuzzFixture {
		cryptotest.SetGlobalRandom(t, 1)
		return buildFuzzGroup(t)
	}
	a, b := build(), build()
	if !bytes.Equal(a.alice, b.alice) || len(a.seeds) != len(b.seeds) {
		t.Fatal("the fuzz group differs between two builds")
	}
	for i := range a.seeds {
		if !bytes.Equal(a.seeds[i].msg, b.seeds[i].msg) {
			t.Fatalf("seed %s differs between two builds", a.seeds[i].name)
		}
	}
}

// TestWriteFuzzSeeds writes the seed corpora when -mls.write-fuzz-seeds
// is given.
func TestWriteFuzzSeeds(t *testing.T) {
	if !*writeFuzzSeeds {
		t.Skip("run with -mls.write-fuzz-seeds to write the seed corpora")
	}
	cryptotest.SetGlobalRandom(t, 1)
	fx := buildFuzzGroup(t)
	write := func(target, name string, args ...[]byte) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.WriteString("go test fuzz v1\n")
		for _, a := range args {
			fmt.Fprintf(&b, "[]byte(%q)\n", a)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range fx.seeds {
		write("FuzzProcess", s.name, s.msg)
		msgs, _ := splitMessages(s.msg)
		if m := msgs[0]; len(msgs) == 1 && m.WireFormat == WireFormatPublicMessage {
			pm := m.PublicMessage
			write("FuzzProcessSigned", s.name, mustEncode(&pm.Content), pm.Auth.ConfirmationTag)
		}
	}
	for name, state := range fx.states {
		write("FuzzUnmarshalGroup", name, state)
	}
}
