package cluster

import (
	"encoding/json"
	"testing"
)

// The decoders of relay messages meet whatever NATS carries: they must
// return an error for anything malformed, never panic, and what they
// accept must encode back to a message they accept alike.

func FuzzDecodeToHost(f *testing.F) {
	f.Add([]byte(`{"op":"open","origin":"0123456789abcdef0123456789abcdef","session":"fedcba9876543210fedcba9876543210","device":"00000000000000000000000000000002","call":{"group_id":"Z3JvdXAtMQ==","call_id":"c","op":"join"}}`))
	f.Add([]byte(`{"op":"keepalive","origin":"0123456789abcdef0123456789abcdef","sessions":["fedcba9876543210fedcba9876543210"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeToHost(data)
		if err != nil {
			return
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if _, err := decodeToHost(again); err != nil {
			t.Fatalf("accepted %q, but not its re-encoding %q: %v", data, again, err)
		}
	})
}

func FuzzDecodeToOrigin(f *testing.F) {
	f.Add([]byte(`{"call":{"group_id":"Z3JvdXAtMQ==","call_id":"c","op":"offer","sdp":"v=0"}}`))
	f.Add([]byte(`{"end":"server shutting down"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeToOrigin(data)
		if err != nil {
			return
		}
		if (m.Call == nil) == (m.End == "") {
			t.Fatalf("accepted %q: want a call or an end", data)
		}
	})
}

func FuzzDecodeReply(f *testing.F) {
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"error":{"code":"forbidden","message":"no"}}`))
	f.Add([]byte(`{"unknown":["fedcba9876543210fedcba9876543210"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeReply(data)
		if err != nil {
			return
		}
		for _, id := range r.Unknown {
			if !isID(id) {
				t.Fatalf("accepted %q with session id %q", data, id)
			}
		}
	})
}

func TestNodeID(t *testing.T) {
	a, b := nodeID("https://node-1.example.org"), nodeID("https://node-2.example.org")
	if !isID(a) || !isID(b) || a == b {
		t.Fatalf("node ids %q %q", a, b)
	}
	if hostSubject(a) != "hush.calls.relay."+a || sessionSubject(a, b) != "hush.calls.relay."+a+"."+b {
		t.Fatal("subjects")
	}
}
