//go:build js && wasm

// Command sframe is the SFrame side of calls in the browser: package
// sframe (RFC 9605), the same code the Go clients use, compiled to a
// small WebAssembly module that runs in the page's encoded-transform
// worker (web/src/call/worker.ts), where RTCRtpScriptTransform hands it
// every encoded audio and video frame.
//
// It keys itself as package client/call does: one sframe.MLSKeys per
// outgoing stream (audio under context ID 0, video under 1) in suite
// AES_128_GCM_SHA256_128, from the conversation's MLS epoch. The page's
// core exports the epoch's base key (RFC 9605 §5.2) and posts it here;
// the MLS state itself never leaves the core.
//
// It sets globalThis.hushSFrame:
//
//	setEpoch(epoch, groupSize, leafIndex, baseKey)  keys for a (newer) epoch
//	encrypt(video: boolean, frame)  → Uint8Array
//	decrypt(frame)                  → Uint8Array, or null for a replayed frame
//
// Each returns an error message (a string) instead when it fails: a frame
// that does not open, no keys yet.
package main

import (
	"errors"
	"fmt"
	"sync"
	"syscall/js"

	"github.com/hush-chat/hush/sframe"
)

// These match package client/call: every member must use the same.
const (
	suite        = sframe.AES_128_GCM_SHA256_128
	contextAudio = 0
	contextVideo = 1
)

var (
	mu           sync.Mutex
	audio, video *sframe.MLSKeys
)

func setEpoch(epoch uint64, size, leaf uint32, baseKey []byte) error {
	mu.Lock()
	defer mu.Unlock()
	export := func(_ string, _ []byte, n int) ([]byte, error) {
		if n != len(baseKey) {
			return nil, fmt.Errorf("base key of %d bytes, want %d", len(baseKey), n)
		}
		return append([]byte(nil), baseKey...), nil
	}
	if audio == nil {
		a, err := sframe.NewMLSKeys(sframe.MLSConfig{Suite: suite, LeafIndex: leaf, ContextID: contextAudio}, epoch, size, export)
		if err != nil {
			return err
		}
		v, err := sframe.NewMLSKeys(sframe.MLSConfig{Suite: suite, LeafIndex: leaf, ContextID: contextVideo}, epoch, size, export)
		if err != nil {
			a.Close()
			return err
		}
		audio, video = a, v
		return nil
	}
	if epoch <= audio.Epoch() {
		return nil
	}
	if err := audio.SetEpoch(epoch, size, export); err != nil {
		return err
	}
	return video.SetEpoch(epoch, size, export)
}

func bytesOf(v js.Value) []byte {
	b := make([]byte, v.Length())
	js.CopyBytesToGo(b, v)
	return b
}

func toJS(b []byte) js.Value {
	a := js.Global().Get("Uint8Array").New(len(b))
	js.CopyBytesToJS(a, b)
	return a
}

// fail is what a function returns for an error: its message. (A Go panic
// would end the module, not throw.)
func fail(err error) any { return err.Error() }

var errNoKeys = errors.New("sframe: no keys yet")

func main() {
	api := js.Global().Get("Object").New()
	api.Set("setEpoch", js.FuncOf(func(_ js.Value, a []js.Value) any {
		if len(a) != 4 {
			return fail(errors.New("setEpoch(epoch, groupSize, leafIndex, baseKey)"))
		}
		key := bytesOf(a[3])
		defer clear(key)
		if err := setEpoch(uint64(a[0].Int()), uint32(a[1].Int()), uint32(a[2].Int()), key); err != nil {
			return fail(err)
		}
		return nil
	}))
	api.Set("encrypt", js.FuncOf(func(_ js.Value, a []js.Value) any {
		mu.Lock()
		k := audio
		if a[0].Truthy() {
			k = video
		}
		mu.Unlock()
		if k == nil {
			return fail(errNoKeys)
		}
		out, err := k.Encrypt(nil, nil, bytesOf(a[1]))
		if err != nil {
			return fail(err)
		}
		return toJS(out)
	}))
	api.Set("decrypt", js.FuncOf(func(_ js.Value, a []js.Value) any {
		mu.Lock()
		k := audio
		mu.Unlock()
		if k == nil {
			return fail(errNoKeys)
		}
		// Any of our MLSKeys derives every member's receiving keys.
		out, err := k.Decrypt(nil, nil, bytesOf(a[0]))
		if errors.Is(err, sframe.ErrReplay) {
			// A copy of a frame already played (audio redundancy, a
			// retransmission): dropped, and not a failure.
			return nil
		}
		if err != nil {
			return fail(err)
		}
		return toJS(out)
	}))
	js.Global().Set("hushSFrame", api)
	if ready := js.Global().Get("hushSFrameReady"); ready.Type() == js.TypeFunction {
		ready.Invoke()
	}
	select {}
}
