package client_test

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hush-chat/hush/client"
	"github.com/hush-chat/hush/proto"
)

// fakeServer is an in-memory delivery service behind client.Transport,
// for unit tests of the client's logic: accounts, KeyPackages, ordered
// group logs with one commit per epoch, inboxes, cursors, blobs and
// linking channels. The integration tests in test/ run the real server.
type fakeServer struct {
	mu      sync.Mutex
	users   map[string]*fakeUser
	devices map[string]*fakeDevice
	groups  map[string]*fakeGroup
	blobs   map[string][]byte
	boxes   map[string]map[string][]byte
	// sent records every Send to a group, for tests that look at
	// ciphertext or at what the server is told.
	sent []proto.Send
	// conflicts counts commits refused for a stale epoch.
	conflicts int
	// page is how many messages a fetch returns at most (default
	// proto.MaxFetch).
	page int
}

type fakeUser struct {
	id, name string
	identity []byte
	devices  []string
}

type fakeDevice struct {
	id, user   string
	secret     string
	cert       []byte
	kps        [][]byte
	lastResort []byte
	inbox      []proto.Envelope
	inboxSeq   uint64
	cursors    map[string]uint64
}

type fakeGroup struct {
	epoch  uint64
	roster []string
	log    []proto.Envelope
	sent   map[string]proto.Sent // sender/client msg id → first answer
}

func newFakeServer() *fakeServer {
	return &fakeServer{users: map[string]*fakeUser{}, devices: map[string]*fakeDevice{}, groups: map[string]*fakeGroup{},
		blobs: map[string][]byte{}, boxes: map[string]map[string][]byte{}}
}

func randomID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func fail(code proto.Code, msg string) error { return &proto.Error{Code: code, Message: msg} }

func (s *fakeServer) transport(string) (client.Transport, error) { return s, nil }

func (s *fakeServer) Connect(context.Context, string) (client.PushConn, error) {
	return nil, errors.New("fake server: no push connection")
}

func (s *fakeServer) Do(_ context.Context, r *client.Request) (io.ReadCloser, error) {
	var body []byte
	if r.Body != nil {
		var err error
		if body, err = io.ReadAll(r.Body); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var dev *fakeDevice
	if r.Auth != "" {
		tok, _ := strings.CutPrefix(r.Auth, "Bearer ")
		id, secret, _ := strings.Cut(tok, ".")
		if d := s.devices[id]; d != nil && d.secret == secret {
			dev = d
		} else {
			return nil, fail(proto.CodeUnauthorized, "bad credentials")
		}
	}
	path, query, _ := strings.Cut(r.Path, "?")
	parts := strings.Split(strings.Trim(path, "/"), "/")
	out, err := s.route(r.Method, parts, query, body, dev)
	if err != nil {
		return nil, err
	}
	if raw, ok := out.([]byte); ok {
		return io.NopCloser(bytes.NewReader(raw)), nil
	}
	b, _ := json.Marshal(out)
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (s *fakeServer) route(method string, p []string, query string, body []byte, dev *fakeDevice) (any, error) {
	need := func() error {
		if dev == nil {
			return fail(proto.CodeUnauthorized, "no credentials")
		}
		return nil
	}
	key := method + " " + strings.Join(p[:min(len(p), 2)], "/")
	switch {
	case key == "POST v1/accounts":
		var req proto.Register
		json.Unmarshal(body, &req)
		if s.users[req.Username] != nil {
			return nil, fail(proto.CodeUsernameTaken, "taken")
		}
		u := &fakeUser{id: randomID(), name: req.Username, identity: req.IdentityKey}
		s.users[u.name] = u
		return s.addDevice(u, req.Device), nil
	case key == "POST v1/devices":
		if err := need(); err != nil {
			return nil, err
		}
		var req proto.NewDevice
		json.Unmarshal(body, &req)
		return s.addDevice(s.userByID(dev.user), req), nil
	case key == "GET v1/users":
		u := s.users[p[2]]
		if u == nil {
			return nil, fail(proto.CodeNotFound, "no user")
		}
		info := proto.UserInfo{UserID: u.id, Username: u.name, IdentityKey: u.identity}
		for _, d := range u.devices {
			info.Devices = append(info.Devices, proto.DeviceInfo{DeviceID: d, Certificate: s.devices[d].cert})
		}
		return info, nil
	case key == "POST v1/keypackages" && len(p) == 2:
		if err := need(); err != nil {
			return nil, err
		}
		var req proto.UploadKeyPackages
		json.Unmarshal(body, &req)
		for _, kp := range req.KeyPackages {
			if kp.LastResort {
				dev.lastResort = kp.Data
			} else {
				dev.kps = append(dev.kps, kp.Data)
			}
		}
		return proto.KeyPackageCount{Count: len(dev.kps), RefillBelow: proto.RefillBelow}, nil
	case key == "GET v1/keypackages":
		if err := need(); err != nil {
			return nil, err
		}
		return proto.KeyPackageCount{Count: len(dev.kps), RefillBelow: proto.RefillBelow}, nil
	case key == "POST v1/keypackages":
		if err := need(); err != nil {
			return nil, err
		}
		var req proto.Claim
		json.Unmarshal(body, &req)
		devs := slices.Clone(req.DeviceIDs)
		for _, n := range req.Usernames {
			if u := s.users[n]; u != nil {
				devs = append(devs, u.devices...)
			}
		}
		var out proto.Claimed
		for _, id := range devs {
			d := s.devices[id]
			if d == nil {
				continue
			}
			data := d.lastResort
			if len(d.kps) > 0 {
				data, d.kps = d.kps[0], d.kps[1:]
			}
			if data != nil {
				out.KeyPackages = append(out.KeyPackages, proto.ClaimedKeyPackage{UserID: d.user, DeviceID: d.id, Data: data})
			}
		}
		if len(out.KeyPackages) == 0 {
			return nil, fail(proto.CodeNoKeyPackage, "none")
		}
		return out, nil
	case key == "POST v1/groups" && len(p) == 2:
		if err := need(); err != nil {
			return nil, err
		}
		var req proto.CreateGroup
		json.Unmarshal(body, &req)
		if s.groups[string(req.GroupID)] != nil {
			return nil, fail(proto.CodeGroupExists, "exists")
		}
		s.groups[string(req.GroupID)] = &fakeGroup{roster: []string{dev.id}, sent: map[string]proto.Sent{}}
		return struct{}{}, nil
	case key == "POST v1/groups":
		if err := need(); err != nil {
			return nil, err
		}
		gid, err := base64.RawURLEncoding.DecodeString(p[2])
		if err != nil {
			return nil, fail(proto.CodeBadRequest, "group id")
		}
		var req proto.Send
		json.Unmarshal(body, &req)
		return s.send(dev, string(gid), req)
	case key == "GET v1/messages":
		if err := need(); err != nil {
			return nil, err
		}
		return s.fetch(dev), nil
	case key == "POST v1/ack":
		if err := need(); err != nil {
			return nil, err
		}
		var req proto.Ack
		json.Unmarshal(body, &req)
		for _, a := range req.Acks {
			if a.Inbox {
				dev.inbox = slices.DeleteFunc(dev.inbox, func(e proto.Envelope) bool { return e.Seq <= a.Seq })
			} else {
				dev.cursors[string(a.GroupID)] = max(dev.cursors[string(a.GroupID)], a.Seq)
			}
		}
		return struct{}{}, nil
	case key == "POST v1/blobs":
		if err := need(); err != nil {
			return nil, err
		}
		id := randomID()
		s.blobs[id] = body
		return proto.BlobRef{ID: id, Size: int64(len(body))}, nil
	case key == "GET v1/blobs":
		if err := need(); err != nil {
			return nil, err
		}
		b, ok := s.blobs[p[2]]
		if !ok {
			return nil, fail(proto.CodeNotFound, "no blob")
		}
		return bytes.Clone(b), nil
	case key == "POST v1/provision":
		if err := need(); err != nil {
			return nil, err
		}
		id := randomID()
		s.boxes[id] = map[string][]byte{}
		return proto.ProvisionChannel{ID: id, Expires: time.Now().Add(proto.ProvisionTTL)}, nil
	case key == "PUT v1/provision":
		var req proto.ProvisionBox
		json.Unmarshal(body, &req)
		ch := s.boxes[p[2]]
		if ch == nil {
			return nil, fail(proto.CodeNotFound, "no channel")
		}
		if req.Box == "old" && dev == nil {
			return nil, fail(proto.CodeUnauthorized, "old box needs credentials")
		}
		ch[req.Box] = req.Data
		return struct{}{}, nil
	case key == "GET v1/provision":
		ch := s.boxes[p[2]]
		if ch == nil {
			return nil, fail(proto.CodeNotFound, "no channel")
		}
		v, _ := url.ParseQuery(query)
		return proto.ProvisionBox{Box: v.Get("box"), Data: ch[v.Get("box")]}, nil
	}
	return nil, fail(proto.CodeNotFound, "no route "+key)
}

func (s *fakeServer) userByID(id string) *fakeUser {
	for _, u := range s.users {
		if u.id == id {
			return u
		}
	}
	return nil
}

func (s *fakeServer) addDevice(u *fakeUser, nd proto.NewDevice) proto.Registered {
	d := &fakeDevice{id: randomID(), user: u.id, secret: base64.RawURLEncoding.EncodeToString(nd.Secret), cert: nd.Certificate, cursors: map[string]uint64{}}
	s.devices[d.id] = d
	u.devices = append(u.devices, d.id)
	return proto.Registered{UserID: u.id, DeviceID: d.id}
}

func (s *fakeServer) send(dev *fakeDevice, gid string, req proto.Send) (any, error) {
	g := s.groups[gid]
	if g == nil {
		return nil, fail(proto.CodeNotFound, "no group")
	}
	if !slices.Contains(g.roster, dev.id) {
		return nil, fail(proto.CodeForbidden, "not on the roster")
	}
	if sent, ok := g.sent[dev.id+"/"+req.ClientMsgID]; ok {
		sent.Duplicate = true
		return sent, nil
	}
	if req.Kind == proto.KindCommit && req.Epoch != g.epoch {
		e := g.epoch
		s.conflicts++
		return nil, &proto.Error{Code: proto.CodeEpochConflict, Message: "stale epoch", Epoch: &e}
	}
	seq := uint64(len(g.log) + 1)
	env := proto.Envelope{GroupID: []byte(gid), Seq: seq, Sender: dev.id, Kind: req.Kind, Epoch: req.Epoch, Payload: req.Payload, Time: time.Now().UTC()}
	g.log = append(g.log, env)
	s.sent = append(s.sent, req)
	if req.Kind == proto.KindCommit {
		g.epoch++
		for _, d := range req.Roster {
			if !slices.Contains(g.roster, d) {
				s.devices[d].cursors[gid] = seq
			}
		}
		g.roster = slices.Clone(req.Roster)
		for _, w := range req.Welcomes {
			for _, id := range w.DeviceIDs {
				d := s.devices[id]
				d.inboxSeq++
				d.inbox = append(d.inbox, proto.Envelope{Seq: d.inboxSeq, Inbox: true, Sender: dev.id, Kind: proto.KindWelcome, Payload: w.Payload, Time: env.Time})
			}
		}
	}
	sent := proto.Sent{Seq: seq, Time: env.Time}
	g.sent[dev.id+"/"+req.ClientMsgID] = sent
	return sent, nil
}

func (s *fakeServer) fetch(dev *fakeDevice) proto.Messages {
	out := proto.Messages{Messages: slices.Clone(dev.inbox), Time: time.Now().UTC()}
	ids := make([]string, 0, len(s.groups))
	for id := range s.groups {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		g := s.groups[id]
		if !slices.Contains(g.roster, dev.id) {
			continue
		}
		for _, e := range g.log {
			if e.Seq > dev.cursors[id] && e.Sender != dev.id {
				out.Messages = append(out.Messages, e)
			}
		}
	}
	page := cmp.Or(s.page, proto.MaxFetch)
	if len(out.Messages) > page {
		out.Messages, out.More = out.Messages[:page], true
	}
	return out
}
