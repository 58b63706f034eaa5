package test

import (
	"testing"

	"github.com/hush-chat/hush/mls"
)

// member is one device's MLS state, made with package mls so that the
// server's framing checks see real messages.
type member struct {
	tb  testing.TB
	key *mls.SignatureKey
	g   *mls.Group
}

func newMember(tb testing.TB) *member {
	tb.Helper()
	key, err := mls.GenerateSignatureKey(mls.DefaultCipherSuite)
	must(tb, err)
	return &member{tb: tb, key: key}
}

// create starts an MLS group with the given id.
func (m *member) create(gid []byte) {
	m.tb.Helper()
	g, err := mls.CreateGroup(m.key, mls.BasicCredential([]byte("creator")), mls.CreateGroupOptions{GroupID: gid})
	must(m.tb, err)
	m.g = g
}

// keyPackage makes an MLSMessage(KeyPackage) and keeps its private part.
func (m *member) keyPackage(lastResort bool) ([]byte, *mls.KeyPackagePrivate) {
	m.tb.Helper()
	kp, err := mls.NewKeyPackage(m.key, mls.KeyPackageOptions{Credential: mls.BasicCredential([]byte("joiner")), LastResort: lastResort})
	must(m.tb, err)
	data, err := (&mls.MLSMessage{WireFormat: mls.WireFormatKeyPackage, KeyPackage: kp.KeyPackage}).Marshal()
	must(m.tb, err)
	return data, kp
}

// app encrypts an application message in the current epoch.
func (m *member) app(text string) []byte {
	m.tb.Helper()
	msg, err := m.g.Encrypt([]byte(text), nil)
	must(m.tb, err)
	b, err := msg.Marshal()
	must(m.tb, err)
	return b
}

// commit makes a pending commit adding kps (or, with none, an update of
// the committer's path), and returns the commit and the Welcome (nil when
// nobody is added).
func (m *member) commit(kps ...[]byte) (commit, welcome []byte) {
	m.tb.Helper()
	var add []*mls.KeyPackage
	for _, data := range kps {
		msg, err := mls.UnmarshalMLSMessage(data)
		must(m.tb, err)
		add = append(add, msg.KeyPackage)
	}
	res, err := m.g.Commit(mls.CommitOptions{Add: add, ForcePath: len(add) == 0, InlineTree: true})
	must(m.tb, err)
	commit, err = res.Commit.Marshal()
	must(m.tb, err)
	if res.Welcome != nil {
		welcome, err = res.Welcome.Marshal()
		must(m.tb, err)
	}
	return commit, welcome
}

// merge applies the member's own pending commit.
func (m *member) merge() { must(m.tb, m.g.MergePendingCommit()) }

// join joins from a Welcome made for kp.
func (m *member) join(welcome []byte, kp *mls.KeyPackagePrivate) {
	m.tb.Helper()
	msg, err := mls.UnmarshalMLSMessage(welcome)
	must(m.tb, err)
	g, err := mls.Join(msg.Welcome, kp, mls.JoinOptions{})
	must(m.tb, err)
	m.g = g
}

// process applies a commit received from another member.
func (m *member) process(data []byte) {
	m.tb.Helper()
	msg, err := mls.UnmarshalMLSMessage(data)
	must(m.tb, err)
	ev, err := m.g.Process(msg)
	must(m.tb, err)
	if sc, ok := ev.(*mls.StagedCommit); ok {
		must(m.tb, m.g.Merge(sc))
	}
}

type mlsMessage = mls.MLSMessage

func parseMLS(data []byte) (*mls.MLSMessage, error) { return mls.UnmarshalMLSMessage(data) }
