package mls

import (
	"bytes"
	"testing"
)

type transcriptVector struct {
	CipherSuite                  uint16   `json:"cipher_suite"`
	ConfirmationKey              hexBytes `json:"confirmation_key"`
	AuthenticatedContent         hexBytes `json:"authenticated_content"`
	InterimTranscriptHashBefore  hexBytes `json:"interim_transcript_hash_before"`
	ConfirmedTranscriptHashAfter hexBytes `json:"confirmed_transcript_hash_after"`
	InterimTranscriptHashAfter   hexBytes `json:"interim_transcript_hash_after"`
}

func TestTranscriptHashVectors(t *testing.T) {
	var vs []transcriptVector
	loadVectors(t, "transcript-hashes.json", &vs)
	tally := newTally(t, "transcript-hashes")
	for _, v := range vs {
		t.Run(CipherSuite(v.CipherSuite).String(), func(t *testing.T) {
			defer tally.record(t)
			s := suiteOrSkip(t, v.CipherSuite)
			var ac AuthenticatedContent
			checkRoundTrip(t, "authenticated_content", v.AuthenticatedContent, &ac)
			if t.Failed() {
				return
			}
			if ac.Content.ContentType != ContentCommit {
				t.Fatalf("authenticated_content has content type %d, want commit", ac.Content.ContentType)
			}
			if !verifyConfirmationTag(s, v.ConfirmationKey, v.ConfirmedTranscriptHashAfter, ac.Auth.ConfirmationTag) {
				t.Error("confirmation tag does not verify")
			}
			confirmed, err := confirmedTranscriptHash(s, v.InterimTranscriptHashBefore, &ac)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(confirmed, v.ConfirmedTranscriptHashAfter) {
				t.Errorf("confirmed transcript hash %x, want %x", confirmed, v.ConfirmedTranscriptHashAfter)
			}
			if got := interimTranscriptHash(s, confirmed, ac.Auth.ConfirmationTag); !bytes.Equal(got, v.InterimTranscriptHashAfter) {
				t.Errorf("interim transcript hash %x, want %x", got, v.InterimTranscriptHashAfter)
			}
			tag := confirmationTag(s, v.ConfirmationKey, confirmed)
			tag[0] ^= 1
			if verifyConfirmationTag(s, v.ConfirmationKey, confirmed, tag) {
				t.Error("a corrupted confirmation tag verifies")
			}
		})
	}
}
