package mls

import (
	"bytes"
	"testing"

	"golang.org/x/crypto/cryptobyte"
)

type messagesVector struct {
	MLSWelcome    hexBytes `json:"mls_welcome"`
	MLSGroupInfo  hexBytes `json:"mls_group_info"`
	MLSKeyPackage hexBytes `json:"mls_key_package"`

	RatchetTree  hexBytes `json:"ratchet_tree"`
	GroupSecrets hexBytes `json:"group_secrets"`

	AddProposal                    hexBytes `json:"add_proposal"`
	UpdateProposal                 hexBytes `json:"update_proposal"`
	RemoveProposal                 hexBytes `json:"remove_proposal"`
	PreSharedKeyProposal           hexBytes `json:"pre_shared_key_proposal"`
	ReInitProposal                 hexBytes `json:"re_init_proposal"`
	ExternalInitProposal           hexBytes `json:"external_init_proposal"`
	GroupContextExtensionsProposal hexBytes `json:"group_context_extensions_proposal"`

	Commit hexBytes `json:"commit"`

	PublicMessageApplication hexBytes `json:"public_message_application"`
	PublicMessageProposal    hexBytes `json:"public_message_proposal"`
	PublicMessageCommit      hexBytes `json:"public_message_commit"`
	PrivateMessage           hexBytes `json:"private_message"`
}

// codec is a value that can be both decoded and encoded.
type codec interface {
	marshaler
	unmarshaler
}

// checkRoundTrip decodes data into v and checks that v encodes back to
// exactly data.
func checkRoundTrip(t *testing.T, name string, data []byte, v codec) {
	t.Helper()
	if err := decode(data, v, name); err != nil {
		t.Errorf("%s: %v", name, err)
		return
	}
	out, err := encode(v)
	if err != nil {
		t.Errorf("%s: re-encode: %v", name, err)
		return
	}
	if !bytes.Equal(out, data) {
		t.Errorf("%s: re-encoding differs:\n got %x\nwant %x", name, out, data)
	}
}

// checkMLSMessage round-trips an MLSMessage and checks its wire format and,
// for a PublicMessage, its content type.
func checkMLSMessage(t *testing.T, name string, data []byte, wf WireFormat, ct ContentType) {
	t.Helper()
	var m MLSMessage
	checkRoundTrip(t, name, data, &m)
	if m.WireFormat != wf {
		t.Errorf("%s: wire format %d, want %d", name, m.WireFormat, wf)
	}
	if wf == WireFormatPublicMessage && m.PublicMessage != nil && m.PublicMessage.Content.ContentType != ct {
		t.Errorf("%s: content type %d, want %d", name, m.PublicMessage.Content.ContentType, ct)
	}
}

func TestMessagesVectors(t *testing.T) {
	var vs []messagesVector
	loadVectors(t, "messages.json", &vs)
	tally := newTally(t, "messages")
	for _, v := range vs {
		t.Run("", func(t *testing.T) {
			defer tally.record(t)
			checkMLSMessage(t, "mls_welcome", v.MLSWelcome, WireFormatWelcome, 0)
			checkMLSMessage(t, "mls_group_info", v.MLSGroupInfo, WireFormatGroupInfo, 0)
			checkMLSMessage(t, "mls_key_package", v.MLSKeyPackage, WireFormatKeyPackage, 0)
			checkRoundTrip(t, "ratchet_tree", v.RatchetTree, new(ratchetTree))
			checkRoundTrip(t, "group_secrets", v.GroupSecrets, new(groupSecrets))
			checkRoundTrip(t, "add_proposal", v.AddProposal, new(AddProposal))
			checkRoundTrip(t, "update_proposal", v.UpdateProposal, new(UpdateProposal))
			checkRoundTrip(t, "remove_proposal", v.RemoveProposal, new(RemoveProposal))
			checkRoundTrip(t, "pre_shared_key_proposal", v.PreSharedKeyProposal, new(PreSharedKeyProposal))
			checkRoundTrip(t, "re_init_proposal", v.ReInitProposal, new(ReInitProposal))
			checkRoundTrip(t, "external_init_proposal", v.ExternalInitProposal, new(ExternalInitProposal))
			checkRoundTrip(t, "group_context_extensions_proposal", v.GroupContextExtensionsProposal, new(GroupContextExtensionsProposal))
			checkRoundTrip(t, "commit", v.Commit, new(Commit))
			checkMLSMessage(t, "public_message_application", v.PublicMessageApplication, WireFormatPublicMessage, ContentApplication)
			checkMLSMessage(t, "public_message_proposal", v.PublicMessageProposal, WireFormatPublicMessage, ContentProposal)
			checkMLSMessage(t, "public_message_commit", v.PublicMessageCommit, WireFormatPublicMessage, ContentCommit)
			checkMLSMessage(t, "private_message", v.PrivateMessage, WireFormatPrivateMessage, 0)
		})
	}
}

type deserializationVector struct {
	VLBytesHeader hexBytes `json:"vlbytes_header"`
	Length        int      `json:"length"`
}

// TestDeserializationVectors decodes each variable-length vector header and
// checks the length, then checks that the header is the one the encoder
// writes for that length.
func TestDeserializationVectors(t *testing.T) {
	var vs []deserializationVector
	loadVectors(t, "deserialization.json", &vs)
	tally := newTally(t, "deserialization")
	for _, v := range vs {
		t.Run("", func(t *testing.T) {
			defer tally.record(t)
			s := cryptobyte.String(v.VLBytesHeader)
			var n int
			if !readVarint(&s, &n) || !s.Empty() {
				t.Fatalf("header %x does not decode", v.VLBytesHeader)
			}
			if n != v.Length {
				t.Fatalf("header %x: length %d, want %d", v.VLBytesHeader, n, v.Length)
			}
			b := cryptobyte.NewBuilder(nil)
			addVarint(b, n)
			if got := b.BytesOrPanic(); !bytes.Equal(got, v.VLBytesHeader) {
				t.Errorf("length %d encodes as %x, want %x", n, got, v.VLBytesHeader)
			}
		})
	}
}
