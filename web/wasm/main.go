//go:build js && wasm

// Command wasm is the Hush client core compiled to WebAssembly for the web
// client: the same package client as the CLI's (MLS, the message model,
// attachments, linking, safety numbers), behind a small bridge that the
// page's TypeScript calls (web/src/core/bridge.ts gives it types).
//
// On start it sets globalThis.hushCore:
//
//	open(host)                    → Promise<string>   JSON: the account, or null
//	call(method, argsJSON, data?) → Promise<string | Uint8Array>
//
// host carries the rows loaded from IndexedDB, the store key, and the
// functions the core calls back: persist (write a transaction), upload
// (an attachment, with progress) and onEvent (a JSON event). Every call
// runs in its own goroutine: a Go callback that blocked would stall the
// browser's event loop, and with it every promise the core waits for.
//
// Errors reject the promise with an Error whose message is the Go error
// and whose code is the server's error code, or a code of the bridge
// ("no_account", "not_found", "identity_changed", ...).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"syscall/js"

	"github.com/hush-chat/hush/client"
	"github.com/hush-chat/hush/proto"
)

func main() {
	b := &bridge{}
	core := js.Global().Get("Object").New()
	core.Set("open", js.FuncOf(func(_ js.Value, args []js.Value) any {
		if len(args) != 1 {
			return reject(errors.New("open(host) takes one argument"))
		}
		host := args[0]
		return promise(func() (any, error) { return b.open(context.Background(), host) })
	}))
	core.Set("call", js.FuncOf(func(_ js.Value, args []js.Value) any {
		if len(args) < 2 || args[0].Type() != js.TypeString || args[1].Type() != js.TypeString {
			return reject(errors.New("call(method, argsJSON, data?) needs a method and JSON arguments"))
		}
		method, raw := args[0].String(), []byte(args[1].String())
		var data []byte
		if len(args) > 2 && args[2].InstanceOf(js.Global().Get("Uint8Array")) {
			data = make([]byte, args[2].Length())
			js.CopyBytesToGo(data, args[2])
		}
		return promise(func() (any, error) { return b.call(context.Background(), method, raw, data) })
	}))
	js.Global().Set("hushCore", core)
	if ready := js.Global().Get("hushCoreReady"); ready.Type() == js.TypeFunction {
		ready.Invoke()
	}
	select {}
}

// promise runs fn in a goroutine and settles a JS Promise with its
// result: a string or []byte (as a Uint8Array), or nil (null).
func promise(fn func() (any, error)) js.Value {
	var executor js.Func
	executor = js.FuncOf(func(_ js.Value, args []js.Value) any {
		resolve, rejectFn := args[0], args[1]
		executor.Release()
		go func() {
			v, err := fn()
			if err != nil {
				rejectFn.Invoke(jsError(err))
				return
			}
			switch v := v.(type) {
			case nil:
				resolve.Invoke(js.Null())
			case []byte:
				a := js.Global().Get("Uint8Array").New(len(v))
				js.CopyBytesToJS(a, v)
				resolve.Invoke(a)
			case string:
				resolve.Invoke(v)
			default:
				b, err := json.Marshal(v)
				if err != nil {
					rejectFn.Invoke(jsError(err))
					return
				}
				resolve.Invoke(string(b))
			}
		}()
		return nil
	})
	return js.Global().Get("Promise").New(executor)
}

func reject(err error) js.Value {
	return js.Global().Get("Promise").Call("reject", jsError(err))
}

// jsError is an Error with the Go error's message and a stable code.
func jsError(err error) js.Value {
	e := js.Global().Get("Error").New(err.Error())
	e.Set("code", errorCode(err))
	return e
}

func errorCode(err error) string {
	var pe *proto.Error
	switch {
	case errors.As(err, &pe):
		return string(pe.Code)
	case errors.Is(err, client.ErrNoAccount):
		return "no_account"
	case errors.Is(err, client.ErrAccountExists):
		return "account_exists"
	case errors.Is(err, client.ErrNotFound):
		return "not_found"
	case errors.Is(err, client.ErrIdentityChanged):
		return "identity_changed"
	case errors.Is(err, client.ErrBadLinkCode):
		return "bad_link_code"
	case errors.Is(err, client.ErrWrongKey):
		return "wrong_key"
	case errors.Is(err, client.ErrTimer):
		return "bad_timer"
	case errors.Is(err, errUnknownMethod):
		return "unknown_method"
	}
	return "error"
}

// await waits for a JS promise. It must not run in a js.FuncOf callback.
func await(p js.Value) (js.Value, error) {
	type result struct {
		v   js.Value
		err error
	}
	ch := make(chan result, 1)
	then := js.FuncOf(func(_ js.Value, args []js.Value) any {
		v := js.Undefined()
		if len(args) > 0 {
			v = args[0]
		}
		ch <- result{v: v}
		return nil
	})
	catch := js.FuncOf(func(_ js.Value, args []js.Value) any {
		msg := "promise rejected"
		if len(args) > 0 && args[0].Truthy() {
			if m := args[0].Get("message"); m.Type() == js.TypeString {
				msg = m.String()
			} else {
				msg = args[0].Call("toString").String()
			}
		}
		ch <- result{err: errors.New(msg)}
		return nil
	})
	defer then.Release()
	defer catch.Release()
	p.Call("then", then, catch)
	r := <-ch
	return r.v, r.err
}
