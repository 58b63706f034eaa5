package mls

import (
	"bytes"
	"testing"
)

// TestApplicationExtension keeps an application's value in the group
// context: required of every member, changed by a commit that the
// receiver can inspect before merging.
func TestApplicationExtension(t *testing.T) {
	const ext ExtensionType = 0xF0A1
	cs := DefaultCipherSuite
	alice, bob, carol := newTestClient(t, cs, "alice"), newTestClient(t, cs, "bob"), newTestClient(t, cs, "carol")
	req := (&RequiredCapabilities{Extensions: []ExtensionType{ext}}).Extension()
	ga, err := CreateGroup(alice.key, BasicCredential([]byte("alice")), CreateGroupOptions{
		Extensions: Extensions{req}, LeafExtensions: []ExtensionType{ext},
	})
	if err != nil {
		t.Fatal(err)
	}

	// A client that does not list the extension cannot be added.
	if _, err := ga.Commit(CommitOptions{Add: []*KeyPackage{carol.keyPackage(t).KeyPackage}}); err == nil {
		t.Fatal("added a member that lacks a required extension")
	}
	kp, err := NewKeyPackage(bob.key, KeyPackageOptions{Credential: BasicCredential([]byte("bob")), Extensions: []ExtensionType{ext}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := ga.Commit(CommitOptions{Add: []*KeyPackage{kp.KeyPackage}, InlineTree: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := ga.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	gb, err := Join(roundTrip(t, res.Welcome).Welcome, kp, JoinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if data, ok := gb.Extensions().Find(ExtRequiredCapabilities); !ok || !bytes.Equal(data, req.Data) {
		t.Fatalf("bob's group context lacks required_capabilities: %v", gb.Extensions())
	}

	// alice sets the value; bob sees it in the staged commit, before
	// merging, and in the group after.
	value := []byte{0, 0, 0x0e, 0x10}
	res, err = ga.Commit(CommitOptions{Extensions: Extensions{req, {Type: ext, Data: value}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ga.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	ev, err := gb.Process(roundTrip(t, res.Commit))
	if err != nil {
		t.Fatal(err)
	}
	sc := ev.(*StagedCommit)
	if got, _ := sc.Extensions().Find(ext); !bytes.Equal(got, value) {
		t.Fatalf("staged commit's extension = %x, want %x", got, value)
	}
	if gb.Extensions().Has(ext) {
		t.Fatal("the value is in force before the commit is merged")
	}
	if err := gb.Merge(sc); err != nil {
		t.Fatal(err)
	}
	if got, _ := gb.Extensions().Find(ext); !bytes.Equal(got, value) {
		t.Fatalf("group's extension = %x, want %x", got, value)
	}

	// A commit without a GroupContextExtensions proposal keeps them.
	res, err = gb.Commit(CommitOptions{ForcePath: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := res.Staged.Extensions().Find(ext); !bytes.Equal(got, value) {
		t.Fatalf("an empty commit changed the extension to %x", got)
	}
}
