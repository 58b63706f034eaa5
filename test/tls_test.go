package test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/server"
)

// Push WebSockets over TLS terminated by Hush itself (--tls-cert and
// --tls-key): the whole API suite, idle connections without a goroutine,
// and frames that share or straddle TLS records.

// testCert is a self-signed certificate for 127.0.0.1, made for this test
// process (no private key is committed), and its PEM files' contents.
var testCert = func() (c struct {
	certPEM, keyPEM []byte
	pool            *x509.CertPool
}) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "hush test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		panic(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	c.certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	c.keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
	c.pool = x509.NewCertPool()
	c.pool.AddCert(cert)
	return c
}()

// The harness's HTTP client and the WebSocket client's (http.DefaultClient)
// trust testCert, so that the suite's helpers work against a TLS server
// unchanged. Set before any test runs; plain http:// is not affected.
func init() {
	httpClient.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: testCert.pool}
	http.DefaultTransport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: testCert.pool}
}

// tlsBackend is sqliteBackend serving HTTPS with testCert.
func tlsBackend(tb testing.TB) server.Options {
	o := sqliteBackend(tb)
	dir := tb.TempDir()
	o.TLSCert, o.TLSKey = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(o.TLSCert, testCert.certPEM, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(o.TLSKey, testCert.keyPEM, 0o600); err != nil {
		tb.Fatal(err)
	}
	return o
}

// TestAPITLS runs the API suite (pushes, sends over the WebSocket,
// catch-up, typing, revocation, malformed frames…) over TLS.
func TestAPITLS(t *testing.T) { runAPI(t, tlsBackend) }

// tlsDial is how dialTLSRaw connects; the zero value is a plain dial.
type tlsDial struct {
	query   string                  // added to the WebSocket's URL
	version uint16                  // the highest TLS version offered, if not 0
	wrap    func(net.Conn) net.Conn // wraps the TCP connection under TLS, if not nil
	early   []byte                  // sent right after the request, before its answer
}

// dialTLSRaw opens an authenticated push WebSocket over TLS to ts as a
// minimal client: the *tls.Conn and nothing else, no goroutine or buffer
// of its own. It returns the connection after the server's hello frame.
func dialTLSRaw(ctx context.Context, ts *testServer, token string, o tlsDial) (*tls.Conn, error) {
	query, version, wrap := o.query, o.version, o.wrap
	u, err := url.Parse(ts.URL())
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	if wrap != nil {
		raw = wrap(raw)
	}
	cn := tls.Client(raw, &tls.Config{RootCAs: testCert.pool, ServerName: "127.0.0.1", MaxVersion: version})
	cn.SetDeadline(time.Now().Add(30 * time.Second))
	path := proto.PathWebSocket
	if query != "" {
		path += "?" + query
	}
	key := base64.StdEncoding.EncodeToString(random(16))
	req := "GET " + path + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: " + proto.WebSocketProtocol + "\r\n" +
		"Authorization: " + token + "\r\n" + proto.HeaderVersion + ": 1\r\n\r\n"
	if _, err := io.WriteString(cn, req); err != nil {
		cn.Close()
		return nil, err
	}
	if o.early != nil {
		if _, err := cn.Write(o.early); err != nil { // a record of its own
			cn.Close()
			return nil, err
		}
	}
	// The answer's head, a byte at a time: nothing after it is taken.
	var head []byte
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		if len(head) > 4096 {
			cn.Close()
			return nil, errors.New("handshake answer too long")
		}
		var b [1]byte
		if _, err := io.ReadFull(cn, b[:]); err != nil {
			cn.Close()
			return nil, err
		}
		head = append(head, b[0])
	}
	if !bytes.HasPrefix(head, []byte("HTTP/1.1 101")) {
		cn.Close()
		status, _, _ := strings.Cut(string(head), "\r\n")
		return nil, fmt.Errorf("handshake: %s", status)
	}
	hello, err := readServerFrame(cn)
	if err != nil || hello.Type != proto.FrameHello {
		cn.Close()
		return nil, fmt.Errorf("no hello frame: %+v, %v", hello, err)
	}
	cn.SetDeadline(time.Time{})
	return cn, nil
}

// readServerFrame reads one (unmasked, unfragmented) server frame.
func readServerFrame(r io.Reader) (proto.Frame, error) {
	var h [10]byte
	if _, err := io.ReadFull(r, h[:2]); err != nil {
		return proto.Frame{}, err
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		if _, err := io.ReadFull(r, h[2:4]); err != nil {
			return proto.Frame{}, err
		}
		n = int(binary.BigEndian.Uint16(h[2:4]))
	case 127:
		if _, err := io.ReadFull(r, h[2:10]); err != nil {
			return proto.Frame{}, err
		}
		n = int(binary.BigEndian.Uint64(h[2:10]))
	}
	if h[0]&0x0f == 0x8 {
		return proto.Frame{}, fmt.Errorf("close frame from the server")
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return proto.Frame{}, err
	}
	var f proto.Frame
	if err := json.Unmarshal(payload, &f); err != nil {
		return proto.Frame{}, fmt.Errorf("frame %q: %w", payload, err)
	}
	return f, nil
}

// clientFrame is a masked text frame of f, as a client sends it.
func clientFrame(f any) []byte {
	payload, err := json.Marshal(f)
	if err != nil {
		panic(err)
	}
	b := []byte{0x81}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = binary.BigEndian.AppendUint16(append(b, 0x80|126), uint16(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, 0x80|127), uint64(n))
	}
	mask := random(4)
	b = append(b, mask...)
	for i, c := range payload {
		b = append(b, c^mask[i%4])
	}
	return b
}

// pingFrame is an application ping with id, padded with pad bytes (an
// unknown field, which the server ignores).
func pingFrame(id uint64, pad int) []byte {
	return clientFrame(struct {
		Type string `json:"type"`
		ID   uint64 `json:"id"`
		Pad  string `json:"pad,omitempty"`
	}{proto.FramePing, id, strings.Repeat("p", pad)})
}

// wantPongs reads frames from cn until the pongs of ids, in that order,
// have come; any other frame but a pushed one fails.
func wantPongs(t *testing.T, cn net.Conn, ids ...uint64) {
	t.Helper()
	// Not a measure of speed: a bound, so that a connection whose frames
	// the server does not read fails the test instead of hanging it.
	cn.SetReadDeadline(time.Now().Add(20 * time.Second))
	defer cn.SetReadDeadline(time.Time{})
	for _, id := range ids {
		f, err := readServerFrame(cn)
		for err == nil && f.Type != proto.FramePong {
			f, err = readServerFrame(cn)
		}
		if err != nil {
			t.Fatalf("waiting for the pong of %d (of %v): %v", id, ids, err)
		}
		if f.ID != id {
			t.Fatalf("pong %d, want %d (frames out of order)", f.ID, id)
		}
	}
}

// settleGoroutines waits until the process has at most limit goroutines
// (the last short-lived workers finish), and returns how many it has.
func settleGoroutines(limit int) int {
	var g int
	for range 300 {
		if g = runtime.NumGoroutine(); g <= limit {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return g
}

// TestIdleTLSConnectionsHoldNoGoroutine is TestIdleConnectionsHoldNoGoroutine
// over TLS: 100 idle push connections, on raw TLS clients, hold no
// goroutine on the server; each still answers a ping.
func TestIdleTLSConnectionsHoldNoGoroutine(t *testing.T) {
	ts := start(t, tlsBackend(t))
	const n = 100
	cs := make([]*client, n)
	for i := range cs {
		cs[i] = register(t, ts)
	}
	httpClient.CloseIdleConnections()
	base := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conns := make([]*tls.Conn, n)
	for i, c := range cs {
		query := ""
		if i%2 == 1 {
			query = "batch=1" // batch frames take the same path
		}
		cn, err := dialTLSRaw(ctx, ts, c.token, tlsDial{query: query})
		if err != nil {
			t.Fatal(err)
		}
		defer cn.Close()
		cn.Write(pingFrame(1, 0))
		wantPongs(t, cn, 1)
		conns[i] = cn
	}
	httpClient.CloseIdleConnections()
	if g := settleGoroutines(base + 10); g > base+10 {
		t.Fatalf("%d goroutines with %d idle TLS connections, %d before them", g, n, base)
	}
	// Still served once idle.
	for _, cn := range conns {
		cn.Write(pingFrame(2, 0))
		wantPongs(t, cn, 2)
	}
}

// piecesConn writes what TLS gives it in pieces of at most size bytes,
// pausing between them so that they tend to arrive as TCP segments of
// their own: records split across segments.
type piecesConn struct {
	net.Conn
	size int
}

func (c *piecesConn) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		k := min(len(b), c.size)
		m, err := c.Conn.Write(b[:k])
		n += m
		if err != nil {
			return n, err
		}
		b = b[k:]
		time.Sleep(time.Millisecond)
	}
	return n, nil
}

// TestTLSFramesAcrossRecords: the server reads every frame however the
// client's TLS records carry them, and answers them in order: several
// frames in one record (after the first, the others are already
// decrypted inside the server's TLS connection, and its socket has
// nothing more to report: the server must drain the TLS connection
// before waiting for the socket again); a frame split across records and
// TCP segments; frames larger than a record, with small ones in their
// last record; and frames split mid-record across writes. On normal,
// batch and send-only connections, and over TLS 1.2.
func TestTLSFramesAcrossRecords(t *testing.T) {
	ts := start(t, tlsBackend(t))
	c := register(t, ts)
	for _, tc := range []struct {
		query   string
		version uint16
	}{{"", tls.VersionTLS13}, {"batch=1", tls.VersionTLS13}, {"push=0", tls.VersionTLS13}, {"", tls.VersionTLS12}} {
		query := tc.query
		t.Run(fmt.Sprintf("query=%s/%s", query, tls.VersionName(tc.version)), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			pc := &piecesConn{size: 1 << 20}
			cn, err := dialTLSRaw(ctx, ts, c.token, tlsDial{query: query, version: tc.version,
				wrap: func(raw net.Conn) net.Conn { pc.Conn = raw; return pc }})
			if err != nil {
				t.Fatal(err)
			}
			defer cn.Close()
			if v := cn.ConnectionState().Version; v != tc.version {
				t.Fatalf("negotiated %s", tls.VersionName(v))
			}
			id := uint64(0)
			next := func() uint64 { id++; return id }

			// Several frames in one record (one Write, well under 16 KiB).
			var b []byte
			var ids []uint64
			for range 10 {
				ids = append(ids, next())
				b = append(b, pingFrame(id, 0)...)
			}
			if _, err := cn.Write(b); err != nil {
				t.Fatal(err)
			}
			wantPongs(t, cn, ids...)

			// One frame in three records, each in pieces of 7 bytes.
			pc.size = 7
			f := pingFrame(next(), 100)
			for _, part := range [][]byte{f[:1], f[1:40], f[40:]} {
				if _, err := cn.Write(part); err != nil {
					t.Fatal(err)
				}
			}
			wantPongs(t, cn, id)

			// A frame larger than a record (16 KiB), then small ones in its
			// last record; and a frame whose end shares a record with the
			// next frames' starts, split across two writes.
			pc.size = 1 << 20
			b, ids = pingFrame(next(), 40<<10), []uint64{id}
			for range 5 {
				ids = append(ids, next())
				b = append(b, pingFrame(id, 0)...)
			}
			if _, err := cn.Write(b); err != nil {
				t.Fatal(err)
			}
			wantPongs(t, cn, ids...)
			b, ids = nil, nil
			for range 6 {
				ids = append(ids, next())
				b = append(b, pingFrame(id, 50)...)
			}
			half := len(b)/2 + 3
			if _, err := cn.Write(b[:half]); err != nil {
				t.Fatal(err)
			}
			if _, err := cn.Write(b[half:]); err != nil {
				t.Fatal(err)
			}
			wantPongs(t, cn, ids...)

			// A close frame in the same record as a ping: the ping is
			// answered, then the server closes.
			closeFrame := []byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8} // 1000, mask 0
			if _, err := cn.Write(append(pingFrame(next(), 0), closeFrame...)); err != nil {
				t.Fatal(err)
			}
			wantPongs(t, cn, id)
			cn.SetReadDeadline(time.Now().Add(20 * time.Second))
			if f, err := readServerFrame(cn); err == nil || !strings.Contains(err.Error(), "close frame") {
				t.Fatalf("after the client's close frame: %+v, %v; want the server's close frame", f, err)
			}
		})
	}
}

// TestTLSFrameWithTheRequest: a client that sends a frame right after the
// upgrade request, without waiting for its answer, in a record of its
// own, is answered (the frame may have been read from the socket with the
// request, into net/http's buffer or the TLS connection's).
func TestTLSFrameWithTheRequest(t *testing.T) {
	ts := start(t, tlsBackend(t))
	c := register(t, ts)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 20 {
		cn, err := dialTLSRaw(ctx, ts, c.token, tlsDial{early: pingFrame(uint64(i), 0)})
		if err != nil {
			t.Fatal(err)
		}
		wantPongs(t, cn, uint64(i))
		cn.Close()
	}
}
