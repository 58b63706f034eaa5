package client

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func validContents() []*Content {
	id, other := NewMessageID(), NewMessageID()
	att := &Attachment{BlobID: "b1", Key: bytes.Repeat([]byte{1}, 32), Size: 10, ContentType: "text/plain", Name: "a.txt", SHA256: bytes.Repeat([]byte{2}, 32)}
	return []*Content{
		{Type: TypeText, Text: "hello"},
		{Type: TypeText, Text: "re", ReplyTo: other},
		{Type: TypeAttachment, Attachment: att},
		{Type: TypeAttachment, Text: "caption", ReplyTo: other, Attachment: att},
		{Type: TypeReaction, Target: other, Emoji: "👍"},
		{Type: TypeReaction, Target: other, Emoji: "👍", Remove: true},
		{Type: TypeEdit, Target: other, Text: "fixed"},
		{Type: TypeDelete, Target: other},
		{Type: TypeReceipt, Targets: []string{id, other}},
		{Type: TypeTyping},
		{Type: TypeMeta, Meta: &Meta{Kind: KindGroup, Name: "plans"}},
		{Type: TypeMeta, Meta: &Meta{Kind: KindDirect}},
	}
}

func TestContentRoundTrip(t *testing.T) {
	for _, c := range validContents() {
		c.Version, c.ID = ContentVersion, NewMessageID()
		data, err := EncodeContent(c)
		if err != nil {
			t.Fatalf("%s: %v", c.Type, err)
		}
		got, err := DecodeContent(data)
		if err != nil {
			t.Fatalf("%s: %v", c.Type, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("%s: got %+v, want %+v", c.Type, got, c)
		}
	}
}

func TestContentRejected(t *testing.T) {
	id := NewMessageID()
	for name, data := range map[string]string{
		"not JSON":           `{`,
		"trailing data":      `{"v":1,"id":"` + id + `","t":"typing"} {}`,
		"bad id":             `{"v":1,"id":"xyz","t":"typing"}`,
		"empty text":         `{"v":1,"id":"` + id + `","t":"text"}`,
		"reaction no target": `{"v":1,"id":"` + id + `","t":"reaction","emoji":"x"}`,
		"reaction no emoji":  `{"v":1,"id":"` + id + `","t":"reaction","target":"` + id + `"}`,
		"delete with text":   `{"v":1,"id":"` + id + `","t":"delete","target":"` + id + `","text":"x"}`,
		"stray target":       `{"v":1,"id":"` + id + `","t":"text","text":"x","target":"` + id + `"}`,
		"bad reply":          `{"v":1,"id":"` + id + `","t":"text","text":"x","reply_to":"zz"}`,
		"meta no kind":       `{"v":1,"id":"` + id + `","t":"meta","meta":{}}`,
		"short key":          `{"v":1,"id":"` + id + `","t":"attachment","attachment":{"blob_id":"b","key":"AAAA","size":1,"sha256":"` + strings.Repeat("A", 43) + `="}}`,
		"receipt empty":      `{"v":1,"id":"` + id + `","t":"receipt"}`,
	} {
		if _, err := DecodeContent([]byte(data)); !errors.Is(err, errBadContent) {
			t.Errorf("%s: got %v, want errBadContent", name, err)
		}
	}
	for name, data := range map[string]string{
		"later version": `{"v":2,"id":"` + id + `","t":"text","text":"x"}`,
		"unknown type":  `{"v":1,"id":"` + id + `","t":"timer","seconds":30}`,
	} {
		if _, err := DecodeContent([]byte(data)); !errors.Is(err, ErrUnsupportedContent) {
			t.Errorf("%s: got %v, want ErrUnsupportedContent", name, err)
		}
	}
	// Unknown fields are ignored, so that a later version may add some.
	if _, err := DecodeContent([]byte(`{"v":1,"id":"` + id + `","t":"text","text":"x","later":true}`)); err != nil {
		t.Errorf("unknown field: %v", err)
	}
}

// FuzzDecodeContent checks that decoding never panics, and that whatever
// decodes encodes and decodes again to the same content.
func FuzzDecodeContent(f *testing.F) {
	for _, c := range validContents() {
		c.Version, c.ID = ContentVersion, NewMessageID()
		data, err := EncodeContent(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeContent(data)
		if err != nil {
			return
		}
		again, err := EncodeContent(c)
		if err != nil {
			t.Fatalf("decoded content does not encode: %v", err)
		}
		c2, err := DecodeContent(again)
		if err != nil {
			t.Fatalf("re-encoded content does not decode: %v", err)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip changed the content:\n%+v\n%+v", c, c2)
		}
	})
}
