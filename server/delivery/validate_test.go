package delivery

import (
	"testing"

	"github.com/hush-chat/hush/mls"
	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/store"
)

// FuzzCheckMLS: the framing check never panics, whatever the payload,
// and accepts a real application message only for its own group, epoch
// and kind.
func FuzzCheckMLS(f *testing.F) {
	key, err := mls.GenerateSignatureKey(mls.DefaultCipherSuite)
	if err != nil {
		f.Fatal(err)
	}
	gid := []byte("group-id-for-the-fuzz-seed")
	g, err := mls.CreateGroup(key, mls.BasicCredential([]byte("fuzz")), mls.CreateGroupOptions{GroupID: gid})
	if err != nil {
		f.Fatal(err)
	}
	msg, err := g.Encrypt([]byte("seed"), nil)
	if err != nil {
		f.Fatal(err)
	}
	app, err := msg.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	res, err := g.Commit(mls.CommitOptions{ForcePath: true})
	if err != nil {
		f.Fatal(err)
	}
	commit, err := res.Commit.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	if err := checkMLS(proto.KindApplication, gid, 0, app); err != nil {
		f.Fatalf("real application message refused: %v", err)
	}
	if err := checkMLS(proto.KindCommit, gid, 0, commit); err != nil {
		f.Fatalf("real commit refused: %v", err)
	}
	for _, bad := range []struct {
		kind  proto.Kind
		group []byte
		epoch uint64
		data  []byte
	}{
		{proto.KindCommit, gid, 0, app},
		{proto.KindApplication, gid, 1, app},
		{proto.KindApplication, []byte("other"), 0, app},
		{proto.KindApplication, gid, 0, commit},
	} {
		if checkMLS(bad.kind, bad.group, bad.epoch, bad.data) == nil {
			f.Fatalf("accepted %s for group %q epoch %d", bad.kind, bad.group, bad.epoch)
		}
	}
	f.Add(app)
	f.Add(commit)
	f.Add([]byte{})
	f.Add([]byte{0, 1, 0, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, k := range []proto.Kind{proto.KindApplication, proto.KindProposal, proto.KindCommit} {
			checkMLS(k, store.GroupID(gid), 0, data)
		}
	})
}
