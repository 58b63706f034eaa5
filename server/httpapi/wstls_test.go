//go:build linux

package httpapi

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"
)

// selfSigned is a certificate for 127.0.0.1 made for the test.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

// heldConn is the client's TCP connection; while hold is set, what TLS
// writes is kept in held for the test to send in pieces.
type heldConn struct {
	net.Conn
	mu   sync.Mutex
	hold bool
	held bytes.Buffer
}

func (c *heldConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hold {
		return c.held.Write(b)
	}
	return c.Conn.Write(b)
}

// TestTLSReadWithoutWaiting checks what the push WebSocket relies on to
// hold TLS connections in the poller (wstls.go), against crypto/tls
// itself: a read of the *tls.Conn over an nbConn in non-blocking mode
// returns plaintext it holds, or records it holds, while the socket is
// empty; returns errWouldBlock when it has nothing, whether or not a part
// of a record arrived; and the connection carries on after that, a record
// completed later being read whole. TLS 1.2 and 1.3.
func TestTLSReadWithoutWaiting(t *testing.T) {
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) { testTLSReadWithoutWaiting(t, v) })
	}
}

func testTLSReadWithoutWaiting(t *testing.T, version uint16) {
	cert, pool := selfSigned(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tln := TLSListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	hc := &heldConn{Conn: raw}
	client := tls.Client(hc, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MaxVersion: version})
	defer client.Close()
	sc, err := tln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	server := sc.(*tls.Conn)
	nb, ok := server.NetConn().(*nbConn)
	if !ok {
		t.Fatalf("TLSListener's connection is over a %T, want *nbConn", server.NetConn())
	}
	handshake := make(chan error, 1)
	go func() { handshake <- server.Handshake() }()
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-handshake; err != nil {
		t.Fatal(err)
	}
	if v := server.ConnectionState().Version; v != version {
		t.Fatalf("negotiated %s", tls.VersionName(v))
	}

	// Reads without waiting, as the session's probe makes them.
	try := func(n int) ([]byte, error) {
		b := make([]byte, n)
		nb.nonblock.Store(true)
		n, err := server.Read(b)
		nb.nonblock.Store(false)
		return b[:n], err
	}
	want := func(n int, s string) {
		t.Helper()
		b, err := try(n)
		if string(b) != s || err != nil {
			t.Fatalf("read %q, %v; want %q", b, err, s)
		}
	}
	wantBlock := func() {
		t.Helper()
		if b, err := try(10); len(b) != 0 || !errors.Is(err, errWouldBlock) {
			t.Fatalf("read %q, %v; want errWouldBlock", b, err)
		}
	}
	arrived := func() { // the bytes sent are in the server's socket
		for !readyToRead(nb) {
			time.Sleep(time.Millisecond)
		}
	}
	socketEmpty := func() {
		t.Helper()
		if readyToRead(nb) {
			t.Fatal("bytes left in the socket")
		}
	}

	wantBlock() // nothing sent yet

	// Plaintext held by the TLS connection, the socket empty.
	if _, err := client.Write([]byte("hello world")); err != nil {
		t.Fatal(err)
	}
	arrived()
	want(1, "h")
	socketEmpty()
	want(1, "e")
	want(20, "llo world")
	wantBlock()

	// A record in pieces: would block at each, then read whole.
	hc.mu.Lock()
	hc.hold = true
	hc.mu.Unlock()
	if _, err := client.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Write([]byte("xyz")); err != nil {
		t.Fatal(err)
	}
	hc.mu.Lock()
	hc.hold = false
	records := bytes.Clone(hc.held.Bytes())
	hc.mu.Unlock()
	// Part of the header, the rest of it and part of the body, one more
	// byte of it (records of 3 bytes are over 20 long).
	for _, cut := range [][2]int{{0, 3}, {3, 10}, {10, 11}} {
		if _, err := raw.Write(records[cut[0]:cut[1]]); err != nil {
			t.Fatal(err)
		}
		arrived()
		wantBlock()
	}
	// The rest of the first record with the whole second one: both are
	// read, the second from the TLS connection's buffer alone.
	if _, err := raw.Write(records[11:]); err != nil {
		t.Fatal(err)
	}
	arrived()
	want(1, "a")
	// Blocking again (as for the rest of a frame): the held plaintext.
	if b := make([]byte, 2); func() bool { _, err := io.ReadFull(server, b); return err != nil || string(b) != "bc" }() {
		t.Fatal("blocking read after a non-blocking one lost bytes")
	}
	socketEmpty()
	want(3, "xyz")
	wantBlock()

	// Writes are unaffected; and the peer's close is seen.
	if _, err := server.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	if _, err := io.ReadFull(client, b); err != nil || string(b) != "pong" {
		t.Fatalf("client read %q, %v", b, err)
	}
	client.Close()
	arrived()
	if b, err := try(10); len(b) != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("read after the peer closed: %q, %v; want EOF", b, err)
	}
}
