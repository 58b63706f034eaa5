package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/coder/websocket"

	"github.com/hush-chat/hush/proto"
)

// Transport is how a [Client] reaches its server. [HTTPTransport] speaks
// HTTP and WebSocket; another platform, or a test, may bring its own.
type Transport interface {
	// Do makes one request. It returns the body of a successful (2xx)
	// response, which the caller closes, or a *proto.Error for an error
	// response.
	Do(ctx context.Context, r *Request) (io.ReadCloser, error)
	// Connect opens the push connection, authenticated with auth (the
	// Authorization header value).
	Connect(ctx context.Context, auth string) (PushConn, error)
}

// Request is one request to the server.
type Request struct {
	Method string
	Path   string // with its query, e.g. "/v1/messages"
	Auth   string // the Authorization header value, or ""
	// Body, of ContentType and Size bytes (-1 if unknown), or nil.
	Body        io.Reader
	ContentType string
	Size        int64
}

// PushConn is a live push connection carrying proto.Frames.
type PushConn interface {
	Read(ctx context.Context) (*proto.Frame, error)
	Write(ctx context.Context, f *proto.Frame) error
	Close() error
}

// HTTPTransport is the Transport over HTTP(S) and WebSocket.
type HTTPTransport struct {
	base   *url.URL
	client *http.Client
}

// NewHTTPTransport returns a transport to the server at serverURL
// ("https://host" or "http://host:port"). hc is the HTTP client to use,
// http.DefaultClient if nil; its Transport also carries the WebSocket.
func NewHTTPTransport(serverURL string, hc *http.Client) (*HTTPTransport, error) {
	u, err := url.Parse(serverURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: server URL must be http(s)://host[:port], not %q", serverURL)
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return &HTTPTransport{base: u, client: hc}, nil
}

// maxErrorBody bounds the error bodies read from the server.
const maxErrorBody = 64 << 10

// Do implements Transport.
func (t *HTTPTransport) Do(ctx context.Context, r *Request) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, r.Method, t.base.String()+r.Path, r.Body)
	if err != nil {
		return nil, err
	}
	if r.Body != nil && r.Size >= 0 {
		req.ContentLength = r.Size
	}
	req.Header.Set(proto.HeaderVersion, strconv.Itoa(proto.Version))
	if r.ContentType != "" {
		req.Header.Set("Content-Type", r.ContentType)
	}
	if r.Auth != "" {
		req.Header.Set(proto.HeaderAuthorization, r.Auth)
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", r.Method, pathOnly(r.Path), err)
	}
	if resp.StatusCode/100 == 2 {
		return resp.Body, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var pe proto.Error
	if json.Unmarshal(body, &pe) != nil || pe.Code == "" {
		pe = proto.Error{Code: proto.CodeInternal, Message: fmt.Sprintf("HTTP status %d", resp.StatusCode)}
		if resp.StatusCode == http.StatusServiceUnavailable {
			pe.Code = proto.CodeUnavailable
		}
	}
	return nil, &pe
}

// pathOnly drops the query, which may carry ids, from error messages.
func pathOnly(p string) string {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		return p[:i]
	}
	return p
}

// Connect implements Transport.
func (t *HTTPTransport) Connect(ctx context.Context, auth string) (PushConn, error) {
	u := *t.base
	u.Scheme = map[string]string{"http": "ws", "https": "wss"}[u.Scheme]
	u.Path += proto.PathWebSocket
	u.RawQuery = proto.WebSocketBatchQuery // we take batch frames
	conn, resp, err := websocket.Dial(ctx, u.String(), dialOptions(t.client, auth))
	if err != nil {
		if resp != nil && resp.Body != nil {
			var pe proto.Error
			body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
			resp.Body.Close()
			if json.Unmarshal(body, &pe) == nil && pe.Code != "" {
				return nil, &pe
			}
		}
		return nil, fmt.Errorf("client: WebSocket: %w", err)
	}
	conn.SetReadLimit(proto.MaxBatchBytes)
	return &wsConn{c: conn}, nil
}

// wsConn reads the frames a batch frame carries one by one, so that its
// users see the frames as if each had come alone.
type wsConn struct {
	c       *websocket.Conn
	pending []proto.Frame // the rest of the last batch frame; Read is not concurrent
}

func (w *wsConn) Read(ctx context.Context) (*proto.Frame, error) {
	for len(w.pending) == 0 {
		typ, data, err := w.c.Read(ctx)
		if err != nil {
			return nil, err
		}
		if typ != websocket.MessageText {
			return nil, errors.New("client: binary WebSocket frame")
		}
		if w.pending, err = decodeFrames(data); err != nil {
			return nil, err
		}
	}
	f := &w.pending[0]
	w.pending = w.pending[1:]
	return f, nil
}

// decodeFrames decodes a frame from the server: a batch frame gives the
// frames it carries, in order (an empty batch none), any other frame
// itself.
func decodeFrames(data []byte) ([]proto.Frame, error) {
	var f proto.Frame
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("client: malformed WebSocket frame: %w", err)
	}
	if f.Type != proto.FrameBatch {
		if len(f.Frames) > 0 {
			return nil, fmt.Errorf("client: malformed WebSocket frame: frames outside a batch")
		}
		return []proto.Frame{f}, nil
	}
	for i := range f.Frames {
		if f.Frames[i].Type == proto.FrameBatch || len(f.Frames[i].Frames) > 0 {
			return nil, errors.New("client: malformed WebSocket frame: a batch inside a batch")
		}
	}
	return f.Frames, nil
}

func (w *wsConn) Write(ctx context.Context, f *proto.Frame) error {
	data, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return w.c.Write(ctx, websocket.MessageText, data)
}

func (w *wsConn) Close() error { return w.c.Close(websocket.StatusNormalClosure, "") }

// call makes a JSON request: in (if not nil) is the body, out (if not
// nil) receives the response.
func (c *Client) call(ctx context.Context, method, path string, auth bool, in, out any) error {
	r := &Request{Method: method, Path: path, Size: -1}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		r.Body, r.Size, r.ContentType = bytes.NewReader(b), int64(len(b)), proto.ContentTypeJSON
	}
	if auth {
		a, err := c.authorization()
		if err != nil {
			return err
		}
		r.Auth = a
	}
	tr, err := c.transport()
	if err != nil {
		return err
	}
	body, err := tr.Do(ctx, r)
	if err != nil {
		return err
	}
	if err := decodeJSON(body, out); err != nil {
		return fmt.Errorf("client: %s %s: %w", method, pathOnly(path), err)
	}
	return nil
}

// decodeJSON reads a response body into out (if not nil) and closes it.
func decodeJSON(body io.ReadCloser, out any) error {
	defer body.Close()
	if out == nil {
		_, err := io.Copy(io.Discard, body)
		return err
	}
	if err := json.NewDecoder(body).Decode(out); err != nil {
		return fmt.Errorf("malformed response: %w", err)
	}
	return nil
}

// isCode reports whether err is a server error with that code.
func isCode(err error, code proto.Code) bool {
	var pe *proto.Error
	return errors.As(err, &pe) && pe.Code == code
}

// permanent reports whether err is an answer from the server that a
// retry of the same request will not change.
func permanent(err error) bool {
	var pe *proto.Error
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case proto.CodeRateLimited, proto.CodeInternal, proto.CodeUnavailable:
		return false
	}
	return true
}

// pathWith fills the {name} parameter of a proto path.
func pathWith(p, name, value string) string {
	return strings.Replace(p, "{"+name+"}", url.PathEscape(value), 1)
}
