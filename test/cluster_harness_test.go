package test

// The multi-node tests start the real `hush` binary three times against
// one PostgreSQL schema and the machine's NATS, and drive devices spread
// over the nodes through the wire protocol. This file holds their harness:
// nodes (processes), devices (credentials, MLS state and a push
// connection that fails over to another node), and MLS group set-up.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/hush-chat/hush/mls"
	"github.com/hush-chat/hush/proto"
)

const clusterNATS = "nats://127.0.0.1:4222"

// clusterServices checks that PostgreSQL and NATS are there: a missing
// one skips the test, or fails it when CI is set.
func clusterServices(t *testing.T) {
	t.Helper()
	for _, addr := range []string{"127.0.0.1:5432", "127.0.0.1:4222"} {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s unreachable (CI is set, so this fails): %v", addr, err)
			}
			t.Skipf("skipping: %s unreachable and CI unset: %v", addr, err)
		}
		c.Close()
	}
}

// buildHush builds the hush binary into a directory of the test.
func buildHush(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hush")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/hush-chat/hush/cmd/hush")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// clusterSchema makes an empty PostgreSQL schema for the test, dropped
// afterwards, and returns the store URL that selects it.
func clusterSchema(t *testing.T) string {
	t.Helper()
	base := os.Getenv("HUSH_TEST_POSTGRES")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("PostgreSQL: %v", err)
	}
	defer admin.Close(ctx)
	schema := "hush_cluster_" + hex.EncodeToString(random(6))
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("dropping %s: %v", schema, err)
			return
		}
		defer admin.Close(ctx)
		if _, err := admin.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("dropping %s: %v", schema, err)
		}
	})
	return base + "&search_path=" + schema + "&pool_max_conns=6"
}

// configHow says how a node gets its settings.
type configHow int

const (
	byFlags  configHow = iota // hush serve --addr … --store …
	byEnv                     // HUSH_ADDR=… HUSH_STORE=… hush serve
	byConfig                  // HUSH_CONFIG=file hush serve, the file holding key = value lines
)

// hushNode is one `hush serve` process.
type hushNode struct {
	name string
	url  string
	cmd  *exec.Cmd
	logs *logBuffer
	exit chan struct{}
}

var servingURL = regexp.MustCompile(`msg="hush serving" url=(http://\S+)`)

// startNode starts `hush serve` on a free loopback port with the store and
// bus given, configured as how says, and waits until it is healthy. It is
// stopped (SIGTERM) when the test ends, unless killed before.
//
// data is the node's data directory; nodes given the same one share their
// attachments' bytes, as nodes sharing a file system do.
func startNode(t *testing.T, bin, name, store, data string, how configHow) *hushNode {
	t.Helper()
	settings := [][2]string{
		{"addr", "127.0.0.1:0"}, {"data", data}, {"store", store}, {"bus", clusterNATS},
		{"device-rate", "-1"}, {"ip-rate", "-1"}, {"shutdown-timeout", "5s"},
	}
	var args []string
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HUSH_") {
			env = append(env, kv)
		}
	}
	switch how {
	case byFlags:
		for _, s := range settings {
			args = append(args, "--"+s[0], s[1])
		}
	case byEnv:
		for _, s := range settings {
			env = append(env, "HUSH_"+strings.ToUpper(strings.ReplaceAll(s[0], "-", "_"))+"="+s[1])
		}
	case byConfig:
		var b strings.Builder
		b.WriteString("# written by the cluster test\n")
		for _, s := range settings {
			fmt.Fprintf(&b, "%s = %q\n", s[0], s[1])
		}
		file := filepath.Join(t.TempDir(), "hush.conf")
		must(t, os.WriteFile(file, []byte(b.String()), 0o600))
		env = append(env, "HUSH_CONFIG="+file)
	}
	n := &hushNode{name: name, logs: &logBuffer{}, exit: make(chan struct{})}
	n.cmd = exec.Command(bin, append([]string{"serve"}, args...)...)
	n.cmd.Env = env
	stderr, err := n.cmd.StderrPipe()
	must(t, err)
	must(t, n.cmd.Start())
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			n.logs.Write([]byte(line + "\n"))
			if m := servingURL.FindStringSubmatch(line); m != nil {
				select {
				case urls <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
		n.cmd.Wait()
		close(n.exit)
	}()
	t.Cleanup(func() {
		n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.exit:
		case <-time.After(20 * time.Second):
			n.cmd.Process.Kill()
			<-n.exit
			t.Errorf("%s did not stop within 20s of SIGTERM", n.name)
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", n.name, n.logs.String())
		}
	})
	select {
	case n.url = <-urls:
	case <-n.exit:
		t.Fatalf("%s exited at start:\n%s", name, n.logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not start within 60s:\n%s", name, n.logs.String())
	}
	resp, err := http.Get(n.url + proto.PathHealth)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%s health: %v %v", name, resp, err)
	}
	resp.Body.Close()
	return n
}

// kill ends the node with SIGKILL: no graceful shutdown, nothing flushed.
func (n *hushNode) kill(t *testing.T) {
	t.Helper()
	must(t, n.cmd.Process.Signal(syscall.SIGKILL))
	<-n.exit
}

func (n *hushNode) alive() bool {
	select {
	case <-n.exit:
		return false
	default:
		return true
	}
}

// cdev is a device of the cluster tests: credentials, MLS state, and a
// push connection to the first live node of its list, which the device
// moves to the next one when the node goes away.
type cdev struct {
	t     *testing.T
	name  string
	c     *client // credentials; c.base is its first node
	nodes []*hushNode
	key   *mls.SignatureKey
	g     *mls.Group

	mu       sync.Mutex
	conn     *websocket.Conn
	lost     chan struct{} // closed when conn ends
	ready    chan struct{} // closed once conn is set
	nextID   uint64
	replies  chan proto.Frame
	received []proto.Envelope // group messages, each seq once, in order of arrival
	seen     map[uint64][]byte
	repushed int
	texts    []string // decrypted application messages, in order
	commits  int      // commits processed
	failures []string
	reconn   []string // nodes connected to, in order
	changed  chan struct{}
	stopped  chan struct{}
}

// newDevice registers a device on nodes[0]; it fails over to the others
// in order.
func newDevice(t *testing.T, name string, nodes ...*hushNode) *cdev {
	t.Helper()
	c := &client{tb: t, base: nodes[0].url, http: httpClient, username: "c" + hex.EncodeToString(random(6)), secret: random(proto.AuthSecretBytes)}
	var reg proto.Registered
	if e := c.call("POST", proto.PathAccounts, proto.Register{
		Username: c.username, IdentityKey: random(32),
		Device: proto.NewDevice{Secret: c.secret, Certificate: random(64)},
	}, &reg); e != nil {
		t.Fatalf("register %s: %v", name, e)
	}
	c.user, c.device = reg.UserID, reg.DeviceID
	c.token = "Bearer " + c.device + "." + base64.RawURLEncoding.EncodeToString(c.secret)
	key, err := mls.GenerateSignatureKey(mls.DefaultCipherSuite)
	must(t, err)
	return &cdev{t: t, name: name, c: c, nodes: nodes, key: key, seen: map[uint64][]byte{},
		replies: make(chan proto.Frame, 16), ready: make(chan struct{}), changed: make(chan struct{}, 1)}
}

// on returns the device's credentials for another node.
func (d *cdev) on(n *hushNode) *client {
	c := *d.c
	c.base = n.url
	return &c
}

// setupGroup makes an MLS group created by devs[0] with every device in
// it: the others upload a KeyPackage through their own node, the creator
// claims them through its node, commits, and the others fetch the Welcome
// from their node and join. The group is then at epoch 1.
func setupGroup(t *testing.T, devs ...*cdev) []byte {
	t.Helper()
	gid := random(32)
	creator := devs[0]
	g, err := mls.CreateGroup(creator.key, mls.BasicCredential([]byte(creator.name)), mls.CreateGroupOptions{GroupID: gid})
	must(t, err)
	creator.g = g
	creator.c.createGroup(gid)
	privs := map[string]*mls.KeyPackagePrivate{}
	var ids []string
	for _, d := range devs[1:] {
		kp, err := mls.NewKeyPackage(d.key, mls.KeyPackageOptions{Credential: mls.BasicCredential([]byte(d.name))})
		must(t, err)
		data, err := (&mls.MLSMessage{WireFormat: mls.WireFormatKeyPackage, KeyPackage: kp.KeyPackage}).Marshal()
		must(t, err)
		if e := d.c.call("POST", proto.PathKeyPackages, proto.UploadKeyPackages{KeyPackages: []proto.KeyPackage{{Data: data}}}, nil); e != nil {
			t.Fatalf("upload: %v", e)
		}
		privs[d.c.device] = kp
		ids = append(ids, d.c.device)
	}
	var claimed proto.Claimed
	if e := creator.c.call("POST", proto.PathClaim, proto.Claim{DeviceIDs: ids}, &claimed); e != nil {
		t.Fatalf("claim: %v", e)
	}
	if len(claimed.KeyPackages) != len(ids) {
		t.Fatalf("claimed %d KeyPackages through %s, uploaded %d through the other nodes", len(claimed.KeyPackages), creator.c.base, len(ids))
	}
	var add []*mls.KeyPackage
	for _, c := range claimed.KeyPackages {
		m, err := mls.UnmarshalMLSMessage(c.Data)
		must(t, err)
		add = append(add, m.KeyPackage)
	}
	res, err := g.Commit(mls.CommitOptions{Add: add, InlineTree: true})
	must(t, err)
	commit, err := res.Commit.Marshal()
	must(t, err)
	welcome, err := res.Welcome.Marshal()
	must(t, err)
	creator.c.mustSend(gid, proto.Send{
		ClientMsgID: "setup", Kind: proto.KindCommit, Epoch: 0, Payload: commit,
		Roster: append([]string{creator.c.device}, ids...), Welcomes: []proto.Welcome{{DeviceIDs: ids, Payload: welcome}},
	})
	must(t, g.MergePendingCommit())
	for _, d := range devs[1:] {
		got := d.c.fetchAll()
		if len(got) != 1 || !got[0].Inbox || got[0].Kind != proto.KindWelcome {
			t.Fatalf("%s's inbox on %s: %+v", d.name, d.c.base, got)
		}
		m, err := mls.UnmarshalMLSMessage(got[0].Payload)
		must(t, err)
		d.g, err = mls.Join(m.Welcome, privs[d.c.device], mls.JoinOptions{})
		must(t, err)
	}
	return gid
}

// encrypt makes n application messages from d, "<prefix> <i>", up front
// (d's group state is then used only by its connection's reader).
func (d *cdev) encrypt(prefix string, n int) (ids []string, payloads map[string][]byte) {
	d.t.Helper()
	payloads = map[string][]byte{}
	for i := range n {
		id := fmt.Sprintf("%s-%04d", prefix, i)
		m, err := d.g.Encrypt([]byte(id), nil)
		must(d.t, err)
		b, err := m.Marshal()
		must(d.t, err)
		ids, payloads[id] = append(ids, id), b
	}
	return ids, payloads
}

// connect runs the device's push connection until ctx ends, reconnecting
// to the first live node of its list whenever the connection drops. Each
// pushed group message is acknowledged at once, checked (each seq once, in
// increasing order, the same payload if pushed again) and decrypted.
func (d *cdev) connect(ctx context.Context) {
	d.stopped = make(chan struct{})
	go func() {
		defer close(d.stopped)
		for ctx.Err() == nil {
			conn, node, err := d.dial(ctx)
			if err != nil {
				if ctx.Err() == nil {
					d.fail("no node to connect to: %v", err)
				}
				return
			}
			lost := make(chan struct{})
			d.mu.Lock()
			d.conn, d.lost = conn, lost
			d.reconn = append(d.reconn, node)
			select {
			case <-d.ready:
			default:
				close(d.ready)
			}
			d.mu.Unlock()
			d.read(ctx, conn)
			close(lost)
			conn.CloseNow()
		}
	}()
	select {
	case <-d.ready:
	case <-time.After(20 * time.Second):
		d.t.Fatalf("%s: no push connection within 20s", d.name)
	}
}

func (d *cdev) dial(ctx context.Context) (*websocket.Conn, string, error) {
	var errs []error
	for range 50 {
		for _, n := range d.nodes {
			if !n.alive() {
				continue
			}
			dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			conn, _, err := websocket.Dial(dctx, "ws"+strings.TrimPrefix(n.url, "http")+proto.PathWebSocket, &websocket.DialOptions{
				HTTPHeader: http.Header{"Authorization": {d.c.token}}, Subprotocols: []string{proto.WebSocketProtocol},
			})
			cancel()
			if err == nil {
				conn.SetReadLimit(proto.MaxRequestBytes)
				return conn, n.name, nil
			}
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil, "", errors.Join(errs...)
}

func (d *cdev) read(ctx context.Context, conn *websocket.Conn) {
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			return
		}
		var f proto.Frame
		if err := json.Unmarshal(data, &f); err != nil {
			d.fail("bad frame: %v", err)
			return
		}
		switch f.Type {
		case proto.FrameSent, proto.FrameError:
			select {
			case d.replies <- f:
			default:
			}
		case proto.FrameMessage:
			d.message(ctx, conn, f.Message)
		}
	}
}

func (d *cdev) message(ctx context.Context, conn *websocket.Conn, env *proto.Envelope) {
	if env.Inbox {
		return
	}
	ack, _ := json.Marshal(proto.Frame{Type: proto.FrameAck, Ack: &proto.Ack{Acks: []proto.AckItem{{GroupID: env.GroupID, Seq: env.Seq}}}})
	defer conn.Write(ctx, websocket.MessageText, ack)
	d.mu.Lock()
	defer d.mu.Unlock()
	defer func() {
		select {
		case d.changed <- struct{}{}:
		default:
		}
	}()
	if prev, ok := d.seen[env.Seq]; ok {
		if !bytes.Equal(prev, env.Payload) {
			d.failLocked("seq %d pushed again with another payload", env.Seq)
		}
		d.repushed++
		return
	}
	if n := len(d.received); n > 0 && env.Seq < d.received[n-1].Seq {
		d.failLocked("seq %d pushed after %d", env.Seq, d.received[n-1].Seq)
	}
	d.seen[env.Seq] = env.Payload
	d.received = append(d.received, *env)
	m, err := mls.UnmarshalMLSMessage(env.Payload)
	if err != nil {
		d.failLocked("seq %d: %v", env.Seq, err)
		return
	}
	ev, err := d.g.Process(m)
	if err != nil {
		d.failLocked("seq %d: decrypt: %v", env.Seq, err)
		return
	}
	switch ev := ev.(type) {
	case *mls.ApplicationMessage:
		d.texts = append(d.texts, string(ev.Data))
	case *mls.StagedCommit:
		if err := d.g.Merge(ev); err != nil {
			d.failLocked("seq %d: merge: %v", env.Seq, err)
		}
		d.commits++
	}
}

func (d *cdev) fail(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failLocked(format, args...)
}

func (d *cdev) failLocked(format string, args ...any) {
	d.failures = append(d.failures, fmt.Sprintf(format, args...))
}

// send sends one message over the push connection and waits for its
// answer. When the connection drops first, it sends again, with the same
// client message id, once the device has reconnected: the retry stores
// nothing twice. It returns the message's seq.
func (d *cdev) send(gid []byte, id string, kind proto.Kind, epoch uint64, payload []byte) (proto.Sent, error) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		d.mu.Lock()
		conn, lost := d.conn, d.lost
		d.nextID++
		fid := d.nextID
		d.mu.Unlock()
		data, _ := json.Marshal(proto.Frame{Type: proto.FrameSend, ID: fid, Send: &proto.SendFrame{GroupID: gid,
			Send: proto.Send{ClientMsgID: id, Kind: kind, Epoch: epoch, Payload: payload}}})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := conn.Write(ctx, websocket.MessageText, data)
		cancel()
		if err != nil {
			d.awaitReconnect(lost)
			continue
		}
	wait:
		for {
			select {
			case f := <-d.replies:
				if f.ID != fid {
					continue // the answer to an attempt on a dead connection
				}
				if f.Type == proto.FrameSent {
					return *f.Sent, nil
				}
				if f.Error.Code == proto.CodeUnavailable {
					break wait
				}
				return proto.Sent{}, f.Error
			case <-lost:
				d.awaitReconnect(lost)
				break wait
			case <-time.After(15 * time.Second):
				return proto.Sent{}, fmt.Errorf("%s: no answer to %s within 15s", d.name, id)
			}
		}
	}
	return proto.Sent{}, fmt.Errorf("%s: %s not answered within 60s", d.name, id)
}

// awaitReconnect waits until the connection that ended with lost has been
// replaced.
func (d *cdev) awaitReconnect(lost chan struct{}) {
	<-lost
	for range 600 {
		d.mu.Lock()
		replaced := d.lost != lost
		d.mu.Unlock()
		if replaced {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitReceived waits until the device has n distinct group messages.
func (d *cdev) waitReceived(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		d.mu.Lock()
		got := len(d.received)
		d.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-d.changed:
		case <-deadline:
			t.Fatalf("%s received %d of %d messages within %v (connections: %v)", d.name, got, n, timeout, d.reconn)
		}
	}
}

// checkFailures fails the test with what went wrong on the device's
// connection.
func (d *cdev) checkFailures(t *testing.T) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, f := range d.failures {
		t.Errorf("%s: %s", d.name, f)
	}
}
