package mlsinterop

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hush-chat/hush/mls"
)

// This file checks interoperability with a second, independent RFC 9420
// implementation: ts-mls (TypeScript, pinned in tsmls/package-lock.json),
// driven through tsmls/peer.mjs one JSON line at a time. Each side creates
// a group the other joins from a Welcome, both agree on the epoch
// authenticator and an exported secret after every commit, application
// messages decrypt both ways, and each side's Add, Remove and path-only
// (update) commits are processed by the other.

// tsmlsDir holds the Node peer and its pinned dependencies.
const tsmlsDir = "tsmls"

// tsPeer is one ts-mls client in a node process.
type tsPeer struct {
	t      *testing.T
	cmd    *exec.Cmd
	in     *json.Encoder
	out    *bufio.Scanner
	stderr bytes.Buffer
}

// requireNode skips the test when node or the peer's node_modules are
// missing, unless CI is set: there they are required.
func requireNode(t *testing.T) {
	t.Helper()
	_, errNode := exec.LookPath("node")
	_, errMods := os.Stat(filepath.Join(tsmlsDir, "node_modules", "ts-mls", "package.json"))
	if errNode == nil && errMods == nil {
		return
	}
	reason := fmt.Sprintf("ts-mls interop needs node and %s/node_modules (run npm ci there): node: %v; node_modules: %v", tsmlsDir, errNode, errMods)
	if os.Getenv("CI") != "" {
		t.Fatal(reason)
	}
	t.Skip(reason)
}

func startPeer(t *testing.T, cs mls.CipherSuite, identity string) *tsPeer {
	t.Helper()
	return startPeerKeys(t, cs, identity, false)
}

// startPeerKeys starts a peer; compressed keeps ts-mls's own encoding of
// ECDSA signature keys (compressed points) instead of the RFC's.
func startPeerKeys(t *testing.T, cs mls.CipherSuite, identity string, compressed bool) *tsPeer {
	t.Helper()
	p := &tsPeer{t: t, cmd: exec.Command("node", "peer.mjs")}
	p.cmd.Dir = tsmlsDir
	p.cmd.Stderr = &p.stderr
	stdin, err := p.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		if err := p.cmd.Wait(); err != nil {
			t.Errorf("ts-mls peer exited: %v\n%s", err, p.stderr.String())
		}
	})
	p.in = json.NewEncoder(stdin)
	p.out = bufio.NewScanner(stdout)
	p.out.Buffer(make([]byte, 1<<20), 64<<20)
	p.call(map[string]any{"op": "init", "suite": int(cs), "identity": hex.EncodeToString([]byte(identity)), "compressed": compressed})
	return p
}

// call sends one request and returns the reply; a reply with an error
// fails the test.
func (p *tsPeer) call(req map[string]any) map[string]any {
	p.t.Helper()
	reply, err := p.try(req)
	if err != nil {
		p.t.Fatalf("ts-mls %s: %v", req["op"], err)
	}
	return reply
}

// try sends one request and returns the reply or the peer's error.
func (p *tsPeer) try(req map[string]any) (map[string]any, error) {
	p.t.Helper()
	if err := p.in.Encode(req); err != nil {
		p.t.Fatalf("ts-mls %s: write: %v\n%s", req["op"], err, p.stderr.String())
	}
	if !p.out.Scan() {
		p.t.Fatalf("ts-mls %s: no reply (%v)\n%s", req["op"], p.out.Err(), p.stderr.String())
	}
	var reply map[string]any
	if err := json.Unmarshal(p.out.Bytes(), &reply); err != nil {
		p.t.Fatalf("ts-mls %s: reply %q: %v", req["op"], p.out.Text(), err)
	}
	if e, ok := reply["error"]; ok {
		return nil, fmt.Errorf("%v", e)
	}
	return reply, nil
}

// bytesField decodes a hex field of a reply.
func (p *tsPeer) bytesField(reply map[string]any, name string) []byte {
	p.t.Helper()
	s, ok := reply[name].(string)
	if !ok {
		p.t.Fatalf("ts-mls reply has no %s: %v", name, reply)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		p.t.Fatalf("ts-mls reply %s: %v", name, err)
	}
	return b
}

// commit has ts-mls commit adding the KeyPackages and removing the leaves;
// it returns the commit and the Welcome (nil when nothing was added).
func (p *tsPeer) commit(public bool, add [][]byte, remove []uint32) (commit, welcome []byte) {
	p.t.Helper()
	commit, welcome, _ = p.commitTree(public, false, add, remove)
	return commit, welcome
}

// commitTree is commit; with externalTree the Welcome's GroupInfo has no
// ratchet_tree extension and the tree is returned for out-of-band use.
func (p *tsPeer) commitTree(public, externalTree bool, add [][]byte, remove []uint32) (commit, welcome, tree []byte) {
	p.t.Helper()
	var adds []string
	for _, kp := range add {
		adds = append(adds, hex.EncodeToString(kp))
	}
	reply := p.call(map[string]any{"op": "commit", "public": public, "external_tree": externalTree, "add": adds, "remove": remove})
	commit = p.bytesField(reply, "commit")
	if _, ok := reply["welcome"]; ok {
		welcome = p.bytesField(reply, "welcome")
	}
	if externalTree {
		tree = p.bytesField(reply, "ratchet_tree")
	}
	return commit, welcome, tree
}

// process has ts-mls process a commit of ours.
func (p *tsPeer) processCommit(msg []byte) {
	p.t.Helper()
	reply := p.call(map[string]any{"op": "process", "message": hex.EncodeToString(msg)})
	if reply["kind"] != "commit" {
		p.t.Fatalf("ts-mls processed a commit as %v", reply["kind"])
	}
}

// goMember is one Hush member.
type goMember struct {
	name  string
	key   *mls.SignatureKey
	kp    *mls.KeyPackagePrivate
	group *mls.Group
}

func newGoMember(t *testing.T, cs mls.CipherSuite, name string) *goMember {
	t.Helper()
	key, err := mls.GenerateSignatureKey(cs)
	if err != nil {
		t.Fatal(err)
	}
	return &goMember{name: name, key: key}
}

// keyPackage makes a KeyPackage and returns it as an MLSMessage.
func (m *goMember) keyPackage(t *testing.T) []byte {
	t.Helper()
	kp, err := mls.NewKeyPackage(m.key, mls.KeyPackageOptions{Credential: mls.BasicCredential([]byte(m.name))})
	if err != nil {
		t.Fatal(err)
	}
	m.kp = kp
	return marshalMsg(t, &mls.MLSMessage{WireFormat: mls.WireFormatKeyPackage, KeyPackage: kp.KeyPackage})
}

// join joins from a Welcome, with the ratchet tree given out of band or,
// when tree is nil, in the Welcome's GroupInfo.
func (m *goMember) join(t *testing.T, welcome, tree []byte) {
	t.Helper()
	w := unmarshalMsg(t, welcome, mls.WireFormatWelcome)
	g, err := mls.Join(w.Welcome, m.kp, mls.JoinOptions{RatchetTree: tree})
	if err != nil {
		t.Fatalf("%s joins from the ts-mls Welcome: %v", m.name, err)
	}
	m.group = g
}

// process has the member process a commit and merge it.
func (m *goMember) processCommit(t *testing.T, msg []byte) *mls.StagedCommit {
	t.Helper()
	ev, err := m.group.Process(unmarshalMsg(t, msg, 0))
	if err != nil {
		t.Fatalf("%s processes the ts-mls commit: %v", m.name, err)
	}
	sc, ok := ev.(*mls.StagedCommit)
	if !ok {
		t.Fatalf("%s: commit processed as %T", m.name, ev)
	}
	if err := m.group.Merge(sc); err != nil {
		t.Fatalf("%s merges the ts-mls commit: %v", m.name, err)
	}
	return sc
}

// commit commits on the Go side and merges at once; it returns the
// commit and the Welcome (nil when nothing was added). The Welcome carries
// the ratchet tree when o.InlineTree is set.
func (m *goMember) commit(t *testing.T, o mls.CommitOptions) (commit, welcome []byte) {
	t.Helper()
	res, err := m.group.Commit(o)
	if err != nil {
		t.Fatalf("%s commits: %v", m.name, err)
	}
	if err := m.group.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	commit = marshalMsg(t, res.Commit)
	if res.Welcome != nil {
		welcome = marshalMsg(t, res.Welcome)
	}
	return commit, welcome
}

func marshalMsg(t *testing.T, m *mls.MLSMessage) []byte {
	t.Helper()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// unmarshalMsg parses an MLSMessage; want 0 accepts any wire format.
func unmarshalMsg(t *testing.T, b []byte, want mls.WireFormat) *mls.MLSMessage {
	t.Helper()
	m, err := mls.UnmarshalMLSMessage(b)
	if err != nil {
		t.Fatalf("parse a ts-mls message: %v", err)
	}
	if want != 0 && m.WireFormat != want {
		t.Fatalf("ts-mls message has wire format %d, want %d", m.WireFormat, want)
	}
	return m
}

const tsExportLabel = "hush ts-mls interop"

// agree checks that the ts-mls peer and every Go member are in the same
// epoch with the same epoch authenticator and exporter output.
func agree(t *testing.T, p *tsPeer, members ...*goMember) {
	t.Helper()
	ctx := []byte("context")
	reply := p.call(map[string]any{"op": "state", "label": tsExportLabel, "context": hex.EncodeToString(ctx), "length": 32})
	epoch, _ := reply["epoch"].(float64)
	auth := p.bytesField(reply, "epoch_authenticator")
	exported := p.bytesField(reply, "exported")
	for _, m := range members {
		if got := m.group.Epoch(); got != uint64(epoch) {
			t.Fatalf("%s is in epoch %d, ts-mls in %v", m.name, got, epoch)
		}
		if got := m.group.EpochAuthenticator(); !bytes.Equal(got, auth) {
			t.Fatalf("epoch %d: %s's epoch authenticator %x, ts-mls's %x", m.group.Epoch(), m.name, got, auth)
		}
		got, err := m.group.Export(tsExportLabel, ctx, 32)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, exported) {
			t.Fatalf("epoch %d: %s exports %x, ts-mls %x", m.group.Epoch(), m.name, got, exported)
		}
	}
}

// converse sends an application message from ts-mls to every Go member
// and one from each Go member to ts-mls, and checks what each decrypts.
func converse(t *testing.T, p *tsPeer, members ...*goMember) {
	t.Helper()
	state := p.call(map[string]any{"op": "state", "label": tsExportLabel, "context": "", "length": 1})
	tsIndex, _ := state["index"].(float64)
	for _, from := range members {
		data := []byte(fmt.Sprintf("%s to ts-mls in epoch %d", from.name, from.group.Epoch()))
		m, err := from.group.Encrypt(data, nil)
		if err != nil {
			t.Fatal(err)
		}
		reply := p.call(map[string]any{"op": "process", "message": hex.EncodeToString(marshalMsg(t, m))})
		if reply["kind"] != "application" {
			t.Fatalf("ts-mls processed %s's application message as %v", from.name, reply["kind"])
		}
		if got := p.bytesField(reply, "data"); !bytes.Equal(got, data) {
			t.Fatalf("ts-mls decrypted %q, %s sent %q", got, from.name, data)
		}
	}
	data := make([]byte, 100)
	rand.Read(data)
	reply := p.call(map[string]any{"op": "encrypt", "data": hex.EncodeToString(data)})
	msg := p.bytesField(reply, "message")
	for _, to := range members {
		ev, err := to.group.Process(unmarshalMsg(t, msg, mls.WireFormatPrivateMessage))
		if err != nil {
			t.Fatalf("%s decrypts the ts-mls application message: %v", to.name, err)
		}
		am, ok := ev.(*mls.ApplicationMessage)
		if !ok {
			t.Fatalf("%s: ts-mls application message processed as %T", to.name, ev)
		}
		if !bytes.Equal(am.Data, data) || am.Sender != uint32(tsIndex) {
			t.Fatalf("%s decrypted %x from leaf %d, ts-mls (leaf %v) sent %x", to.name, am.Data, am.Sender, tsIndex, data)
		}
	}
}

// interopSuites are the cipher suites both implementations support:
// X25519/AES-GCM, P-256, X25519/ChaCha20-Poly1305, P-521 and P-384.
var interopSuites = []mls.CipherSuite{1, 2, 3, 5, 7}

func TestTSMLS(t *testing.T) {
	requireNode(t)
	for _, cs := range interopSuites {
		t.Run(fmt.Sprintf("suite%d", cs), func(t *testing.T) {
			t.Run("TSMLSCreatesGoJoins", func(t *testing.T) { tsCreates(t, cs, false) })
			t.Run("GoCreatesTSMLSJoins", func(t *testing.T) { goCreates(t, cs, false) })
			if cs == 1 {
				// The same with the ratchet tree passed out of band
				// (no ratchet_tree extension), one suite being enough
				// for the tree's encoding.
				t.Run("TSMLSCreatesGoJoinsExternalTree", func(t *testing.T) { tsCreates(t, cs, true) })
				t.Run("GoCreatesTSMLSJoinsExternalTree", func(t *testing.T) { goCreates(t, cs, true) })
			}
		})
	}
}

// tsCreates: ts-mls creates the group and adds a Hush member, which joins
// from the Welcome; then a path-only commit from each side, a second Hush
// member added by Hush, and a ts-mls commit removing it. A Hush Update
// proposal is committed by reference by ts-mls.
func tsCreates(t *testing.T, cs mls.CipherSuite, externalTree bool) {
	p := startPeer(t, cs, "ts-alice")
	groupID := make([]byte, 16)
	rand.Read(groupID)
	p.call(map[string]any{"op": "create", "group_id": hex.EncodeToString(groupID)})

	bob := newGoMember(t, cs, "go-bob")
	_, welcome, tree := p.commitTree(false, externalTree, [][]byte{bob.keyPackage(t)}, nil)
	if welcome == nil {
		t.Fatal("ts-mls added a member without a Welcome")
	}
	bob.join(t, welcome, tree)
	if !bytes.Equal(bob.group.GroupID(), groupID) || bob.group.CipherSuite() != cs {
		t.Fatalf("joined group %x suite %d, want %x suite %d", bob.group.GroupID(), bob.group.CipherSuite(), groupID, cs)
	}
	agree(t, p, bob)
	converse(t, p, bob)

	// A path-only commit (an update of the committer's leaf) each way.
	commit, _ := bob.commit(t, mls.CommitOptions{ForcePath: true})
	p.processCommit(commit)
	agree(t, p, bob)
	commit, _ = p.commit(true, nil, nil)
	bob.processCommit(t, commit)
	agree(t, p, bob)
	converse(t, p, bob)

	// An Update proposal from Hush, committed by reference by ts-mls.
	prop, err := bob.group.ProposeUpdate()
	if err != nil {
		t.Fatal(err)
	}
	reply := p.call(map[string]any{"op": "process", "message": hex.EncodeToString(marshalMsg(t, prop))})
	if reply["kind"] != "proposal" {
		t.Fatalf("ts-mls processed an Update proposal as %v", reply["kind"])
	}
	commit, _ = p.commit(false, nil, nil)
	sc := bob.processCommit(t, commit)
	if len(sc.Updated) != 1 || sc.Updated[0] != bob.group.Index() {
		t.Fatalf("ts-mls commit of our Update seen as updating %v", sc.Updated)
	}
	agree(t, p, bob)
	converse(t, p, bob)

	// Hush adds a third member; ts-mls processes the commit.
	carol := newGoMember(t, cs, "go-carol")
	commit, welcome = bob.commit(t, mls.CommitOptions{Add: []*mls.KeyPackage{mustKP(t, carol)}, InlineTree: true})
	p.processCommit(commit)
	carol.join(t, welcome, nil)
	agree(t, p, bob, carol)
	converse(t, p, bob, carol)

	// ts-mls removes the third member.
	commit, _ = p.commit(false, nil, []uint32{carol.group.Index()})
	sc = bob.processCommit(t, commit)
	if len(sc.Removed) != 1 || sc.Removed[0].Index != carol.group.Index() {
		t.Fatalf("ts-mls Remove of leaf %d seen as %+v", carol.group.Index(), sc.Removed)
	}
	sc = carol.processCommit(t, commit)
	if !sc.SelfRemoved || carol.group.Active() {
		t.Fatal("the removed member does not see itself removed")
	}
	agree(t, p, bob)
	converse(t, p, bob)
}

// goCreates: Hush creates the group and adds a ts-mls member, which joins
// from the Welcome; then a path-only commit from each side, a second Hush
// member added by ts-mls, and a ts-mls Remove proposal committed by
// reference by Hush.
func goCreates(t *testing.T, cs mls.CipherSuite, externalTree bool) {
	alice := newGoMember(t, cs, "go-alice")
	g, err := mls.CreateGroup(alice.key, mls.BasicCredential([]byte(alice.name)), mls.CreateGroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	alice.group = g

	p := startPeer(t, cs, "ts-bob")
	kp := p.bytesField(p.call(map[string]any{"op": "key_package"}), "key_package")
	m := unmarshalMsg(t, kp, mls.WireFormatKeyPackage)
	_, welcome := alice.commit(t, mls.CommitOptions{Add: []*mls.KeyPackage{m.KeyPackage}, InlineTree: !externalTree})
	join := map[string]any{"op": "join", "welcome": hex.EncodeToString(welcome)}
	if externalTree {
		join["ratchet_tree"] = hex.EncodeToString(alice.group.RatchetTree())
	}
	p.call(join)
	agree(t, p, alice)
	converse(t, p, alice)

	commit, _ := p.commit(false, nil, nil)
	alice.processCommit(t, commit)
	agree(t, p, alice)
	commit, _ = alice.commit(t, mls.CommitOptions{ForcePath: true})
	p.processCommit(commit)
	agree(t, p, alice)
	converse(t, p, alice)

	// ts-mls adds a third member, a Hush client, which joins from the
	// ts-mls Welcome.
	carol := newGoMember(t, cs, "go-carol")
	commit, welcome, tree := p.commitTree(true, externalTree, [][]byte{carol.keyPackage(t)}, nil)
	sc := alice.processCommit(t, commit)
	if len(sc.Added) != 1 {
		t.Fatalf("ts-mls Add seen as %+v", sc.Added)
	}
	carol.join(t, welcome, tree)
	agree(t, p, alice, carol)
	converse(t, p, alice, carol)

	// ts-mls proposes to remove it, Hush commits the proposal by
	// reference, ts-mls processes the commit.
	prop := p.bytesField(p.call(map[string]any{"op": "propose_remove", "index": carol.group.Index(), "public": true}), "proposal")
	for _, m := range []*goMember{alice, carol} {
		ev, err := m.group.Process(unmarshalMsg(t, prop, mls.WireFormatPublicMessage))
		if err != nil {
			t.Fatalf("%s processes the ts-mls Remove proposal: %v", m.name, err)
		}
		if _, ok := ev.(*mls.ProposalEvent); !ok {
			t.Fatalf("%s: ts-mls proposal processed as %T", m.name, ev)
		}
	}
	commit, _ = alice.commit(t, mls.CommitOptions{})
	p.processCommit(commit)
	sc = carol.processCommit(t, commit)
	if !sc.SelfRemoved {
		t.Fatal("the removed member does not see itself removed")
	}
	agree(t, p, alice)
	converse(t, p, alice)
}

// mustKP makes a KeyPackage for m and returns it parsed.
func mustKP(t *testing.T, m *goMember) *mls.KeyPackage {
	t.Helper()
	return unmarshalMsg(t, m.keyPackage(t), mls.WireFormatKeyPackage).KeyPackage
}

// TestTSMLSCompressedSignatureKey pins down the one deviation found: ts-mls
// 1.6.4 encodes ECDSA signature public keys as compressed points (33 bytes
// for P-256), while RFC 9420 uses the uncompressed form (65 bytes in the
// official test vectors). Hush must refuse such a KeyPackage and such a
// group with an error, leaving its own group unchanged.
func TestTSMLSCompressedSignatureKey(t *testing.T) {
	requireNode(t)
	const cs = mls.CipherSuite(2)

	p := startPeerKeys(t, cs, "ts-compressed", true)
	m := unmarshalMsg(t, p.bytesField(p.call(map[string]any{"op": "key_package"}), "key_package"), mls.WireFormatKeyPackage)
	if n := len(m.KeyPackage.LeafNode.SignatureKey); n != 33 {
		t.Fatalf("ts-mls signature key is %d bytes; the deviation this test pins is gone", n)
	}
	alice := newGoMember(t, cs, "go-alice")
	g, err := mls.CreateGroup(alice.key, mls.BasicCredential([]byte(alice.name)), mls.CreateGroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Commit(mls.CommitOptions{Add: []*mls.KeyPackage{m.KeyPackage}}); err == nil {
		t.Fatal("a KeyPackage with a compressed signature key was added")
	} else if !strings.Contains(err.Error(), "malformed signature public key") {
		t.Errorf("the refusal does not name the malformed key: %v", err)
	}
	if g.Epoch() != 0 || g.HasPendingCommit() || len(g.Members()) != 1 {
		t.Fatal("a refused Add changed the group")
	}

	// A group ts-mls created with such a key cannot be joined either: the
	// GroupInfo signature is checked against the creator's leaf.
	p2 := startPeerKeys(t, cs, "ts-compressed-creator", true)
	p2.call(map[string]any{"op": "create", "group_id": hex.EncodeToString([]byte("compressed"))})
	bob := newGoMember(t, cs, "go-bob")
	_, welcome := p2.commit(false, [][]byte{bob.keyPackage(t)}, nil)
	w := unmarshalMsg(t, welcome, mls.WireFormatWelcome)
	if _, err := mls.Join(w.Welcome, bob.kp, mls.JoinOptions{}); err == nil {
		t.Fatal("joined a group whose creator's signature key is compressed")
	} else if !strings.Contains(err.Error(), "malformed signature public key") {
		t.Errorf("the refusal does not name the malformed key: %v", err)
	}
}
