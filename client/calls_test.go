package client

import (
	"errors"
	"strings"
	"testing"
)

func TestCallContent(t *testing.T) {
	id := NewMessageID()
	ct := &Content{Version: ContentVersion, ID: id, Type: TypeCall, Call: &CallSignal{ID: NewCallID(), Op: CallInvite}}
	b, err := EncodeContent(ct)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeContent(b)
	if err != nil || got.Type != TypeCall || *got.Call != *ct.Call {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	bad := map[string]string{
		"no call":    `{"v":1,"id":"` + id + `","t":"call"}`,
		"text":       `{"v":1,"id":"` + id + `","t":"call","text":"hi","call":{"id":"x","op":"join"}}`,
		"no call id": `{"v":1,"id":"` + id + `","t":"call","call":{"id":"","op":"join"}}`,
		"long id":    `{"v":1,"id":"` + id + `","t":"call","call":{"id":"` + strings.Repeat("x", 65) + `","op":"join"}}`,
		"stray call": `{"v":1,"id":"` + id + `","t":"text","text":"hi","call":{"id":"x","op":"join"}}`,
	}
	for name, data := range bad {
		if _, err := DecodeContent([]byte(data)); !errors.Is(err, errBadContent) {
			t.Errorf("%s: got %v, want errBadContent", name, err)
		}
	}
	// An op this client does not know is skipped as unsupported, as old
	// clients skip the whole "call" type.
	if _, err := DecodeContent([]byte(`{"v":1,"id":"` + id + `","t":"call","call":{"id":"x","op":"transfer"}}`)); !errors.Is(err, ErrUnsupportedContent) {
		t.Errorf("unknown op: %v", err)
	}
}
