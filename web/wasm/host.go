//go:build js && wasm

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"syscall/js"

	"github.com/hush-chat/hush/client"
	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/web/idb"
)

// The page's side of the core: IndexedDB (through web/src/vault.ts),
// uploads with progress, and events.

// persister writes transactions through host.persist(puts, dels), which
// seals each value with the page's WebCrypto key and writes them all in
// one IndexedDB transaction.
type persister struct{ fn js.Value }

func (p persister) Persist(_ context.Context, puts []idb.Row, dels []string) error {
	jsPuts := js.Global().Get("Array").New(len(puts))
	for i, r := range puts {
		v := js.Global().Get("Uint8Array").New(len(r.Value))
		js.CopyBytesToJS(v, r.Value)
		jsPuts.SetIndex(i, js.ValueOf([]any{r.ID, v}))
	}
	jsDels := js.Global().Get("Array").New(len(dels))
	for i, id := range dels {
		jsDels.SetIndex(i, id)
	}
	_, err := await(p.fn.Invoke(jsPuts, jsDels))
	return err
}

// loadRows converts host.rows, an array of [id, Uint8Array].
func loadRows(v js.Value) ([]idb.Row, error) {
	if v.Type() != js.TypeObject {
		return nil, nil
	}
	n := v.Length()
	rows := make([]idb.Row, n)
	for i := range n {
		r := v.Index(i)
		if r.Length() != 2 || r.Index(0).Type() != js.TypeString {
			return nil, fmt.Errorf("host.rows[%d] is not [id, bytes]", i)
		}
		val := make([]byte, r.Index(1).Length())
		js.CopyBytesToGo(val, r.Index(1))
		rows[i] = idb.Row{ID: r.Index(0).String(), Value: val}
	}
	return rows, nil
}

// progressKey carries an attachment upload's progress function.
type progressKey struct{}

// transport is the client's HTTPTransport, except that attachment
// uploads go through host.upload (XMLHttpRequest, which reports upload
// progress where fetch cannot), and that the push connection's state is
// reported as "connection" events.
type transport struct {
	*client.HTTPTransport
	base   string
	upload js.Value
	emit   func(event)
	b      *bridge
}

func (t *transport) Do(ctx context.Context, r *client.Request) (io.ReadCloser, error) {
	progress, _ := ctx.Value(progressKey{}).(func(done, total int64))
	if r.Method != "POST" || r.Path != proto.PathBlobs || t.upload.Type() != js.TypeFunction || progress == nil {
		return t.HTTPTransport.Do(ctx, r)
	}
	body, err := io.ReadAll(r.Body) // encrypts the file
	if err != nil {
		return nil, err
	}
	headers := map[string]any{
		proto.HeaderVersion:       strconv.Itoa(proto.Version),
		"Content-Type":            r.ContentType,
		proto.HeaderAuthorization: r.Auth,
	}
	data := js.Global().Get("Uint8Array").New(len(body))
	js.CopyBytesToJS(data, body)
	cb := js.FuncOf(func(_ js.Value, args []js.Value) any {
		progress(int64(args[0].Float()), int64(args[1].Float()))
		return nil
	})
	defer cb.Release()
	res, err := await(t.upload.Invoke(t.base+r.Path, headers, data, cb))
	if err != nil {
		return nil, fmt.Errorf("client: POST %s: %w", r.Path, err)
	}
	status, text := res.Get("status").Int(), res.Get("body").String()
	if status/100 == 2 {
		return io.NopCloser(bytes.NewReader([]byte(text))), nil
	}
	var pe proto.Error
	if json.Unmarshal([]byte(text), &pe) != nil || pe.Code == "" {
		pe = proto.Error{Code: proto.CodeInternal, Message: fmt.Sprintf("HTTP status %d", status)}
	}
	return nil, &pe
}

func (t *transport) Connect(ctx context.Context, auth string) (client.PushConn, error) {
	conn, err := t.HTTPTransport.Connect(ctx, auth)
	if err != nil {
		t.emit(event{Type: "connection", Text: "offline"})
		return nil, err
	}
	pc := &pushConn{PushConn: conn, emit: t.emit, b: t.b}
	// Live before the page hears "online": a call that rejoins on that
	// event signals over this connection.
	t.b.setLive(pc)
	t.emit(event{Type: "connection", Text: "online"})
	return pc, nil
}

// pushConn reports the connection's state, and hands the page the call
// signalling frames (proto.Call, from the SFU), which the core does not
// handle.
type pushConn struct {
	client.PushConn
	emit func(event)
	b    *bridge
}

// Close closes the connection; call signalling no longer goes to it.
func (p *pushConn) Close() error {
	p.b.dropLive(p)
	return p.PushConn.Close()
}

func (p *pushConn) Read(ctx context.Context) (*proto.Frame, error) {
	f, err := p.PushConn.Read(ctx)
	if err != nil {
		p.b.dropLive(p)
	}
	if err != nil && ctx.Err() == nil {
		p.emit(event{Type: "connection", Text: "offline"})
	}
	if err == nil && f.Type == proto.FrameCall && f.Call != nil {
		p.emit(event{Type: "call_frame", Call: f.Call})
	}
	if err == nil && f.Type == proto.FrameError && f.Error != nil && f.ID >= callFrameIDBase {
		// The server refused a call frame the page sent (callSignal).
		p.emit(event{Type: "call_error", Text: string(f.Error.Code) + ": " + f.Error.Message})
	}
	return f, err
}

// Call frames the page sends carry ids from callFrameIDBase up, so that
// the server's error frame for one of them (which repeats its id) reaches
// the page; the core sends no frame with an id.
const callFrameIDBase = 1 << 62

var callFrameSeq atomic.Uint64

func callFrameID() uint64 { return callFrameIDBase + callFrameSeq.Add(1) }
