// Package mlsinterop implements the MLSClient gRPC service of the MLS
// interoperability test harness (github.com/mlswg/mls-implementations,
// interop/) on top of Hush's MLS package, and a test runner that plays
// the harness's scripted scenarios against two such clients.
//
// The service keeps every object a test runner refers to by number in one
// table of handles: group states, pending joins ("transactions"), groups
// being re-initialised and external signers. All messages cross the wire
// TLS-encoded as in RFC 9420: KeyPackages, proposals, commits, Welcomes
// and GroupInfos inside an MLSMessage; ratchet trees and external senders
// bare.
package mlsinterop

import (
	"bytes"
	"context"
	"errors"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hush-chat/hush/internal/mlsinterop/pb"
	"github.com/hush-chat/hush/mls"
)

// Name is what the service reports as its implementation's name.
const Name = "hush"

// Server implements pb.MLSClientServer. Its methods are safe for
// concurrent use: one mutex serialises them, as the harness drives each
// client one call at a time anyway.
type Server struct {
	pb.UnimplementedMLSClientServer

	mu      sync.Mutex
	next    uint32
	handles map[uint32]any // *member, *joiner, *reinit or *signer
}

// NewServer returns a service with no state.
func NewServer() *Server {
	return &Server{handles: make(map[uint32]any)}
}

// client is one MLS client as the harness sees it: an identity and the
// external PSKs installed for it.
type client struct {
	identity []byte
	psks     map[string][]byte
}

func newClient(identity []byte) *client {
	return &client{identity: bytes.Clone(identity), psks: make(map[string][]byte)}
}

// config is the group configuration of the client's groups.
func (c *client) config(encrypt bool) mls.Config {
	return mls.Config{EncryptHandshake: encrypt, ExternalPSK: c.lookupPSK}
}

func (c *client) lookupPSK(id []byte) ([]byte, bool) {
	v, ok := c.psks[string(id)]
	return v, ok
}

func (c *client) credential() mls.Credential { return mls.BasicCredential(bytes.Clone(c.identity)) }

// member is a client's state in a group.
type member struct {
	client  *client
	key     *mls.SignatureKey
	group   *mls.Group
	encrypt bool
	// own holds the proposals we sent in the current epoch: a commit or a
	// proposal list handed back to us must not process them again.
	own map[string]bool
}

func newMember(c *client, key *mls.SignatureKey, g *mls.Group, encrypt bool) *member {
	return &member{client: c, key: key, group: g, encrypt: encrypt, own: make(map[string]bool)}
}

// joiner is a KeyPackage awaiting its Welcome: a "transaction".
type joiner struct {
	client *client
	key    *mls.SignatureKey
	kp     *mls.KeyPackagePrivate
}

// reinit is a member of a group closed by a ReInit, with its signature
// key and KeyPackage for the group that replaces it.
type reinit struct {
	old *member
	key *mls.SignatureKey
	kp  *mls.KeyPackagePrivate
}

// signer is an external sender (§12.1.8.1).
type signer struct {
	key *mls.SignatureKey
}

// add stores h and returns its handle. The caller holds s.mu.
func (s *Server) add(h any) uint32 {
	s.next++
	s.handles[s.next] = h
	return s.next
}

// register stores h under s.mu and returns its handle.
func (s *Server) register(h any) uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.add(h)
}

// lookup returns the handle id as a T. The caller holds s.mu.
func lookup[T any](s *Server, id uint32, what string) (T, error) {
	h, ok := s.handles[id].(T)
	if !ok {
		return h, status.Errorf(codes.NotFound, "no %s with id %d", what, id)
	}
	return h, nil
}

// with runs f on the handle id as a T, holding s.mu; what names a T in
// the NotFound error when there is no such handle.
func with[T, R any](s *Server, id uint32, what string, f func(T) (R, error)) (R, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, err := lookup[T](s, id, what)
	if err != nil {
		var zero R
		return zero, err
	}
	return f(h)
}

// onState runs f on the group state id, holding s.mu.
func onState[R any](s *Server, id uint32, f func(*member) (R, error)) (R, error) {
	return with(s, id, "state", f)
}

// errStatus turns an error of the mls package into a gRPC status: a
// message that does not fit the state (wrong epoch, replay, inactive
// group) is a FailedPrecondition; anything else the package rejects —
// malformed or invalid messages, ciphertexts that do not decrypt,
// unsupported suites — is an InvalidArgument.
func errStatus(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, mls.ErrWrongEpoch), errors.Is(err, mls.ErrInactive), errors.Is(err, mls.ErrReplay):
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	return status.Error(codes.InvalidArgument, err.Error())
}

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// cipherSuite checks a cipher suite number from the wire.
func cipherSuite(v uint32) (mls.CipherSuite, error) {
	cs := mls.CipherSuite(v)
	if v > 0xffff || !cs.Supported() {
		return 0, invalid("unsupported cipher suite %d", v)
	}
	return cs, nil
}

// parse decodes an MLSMessage of the wire format want.
func parse(data []byte, want mls.WireFormat, what string) (*mls.MLSMessage, error) {
	m, err := mls.UnmarshalMLSMessage(data)
	if err != nil {
		return nil, invalid("%s: %v", what, err)
	}
	if m.WireFormat != want {
		return nil, invalid("%s: wire format %d, want %d", what, m.WireFormat, want)
	}
	return m, nil
}

// marshal encodes a message this service made; failing that is a bug.
func marshal(m *mls.MLSMessage) ([]byte, error) {
	if m == nil {
		return nil, nil
	}
	data, err := m.Marshal()
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return data, nil
}

// encoded encodes the message an mls call made, or turns its error into a
// status.
func encoded(m *mls.MLSMessage, err error) ([]byte, error) {
	if err != nil {
		return nil, errStatus(err)
	}
	return marshal(m)
}

// generateKey makes a signature key of suite cs.
func generateKey(cs mls.CipherSuite) (*mls.SignatureKey, error) {
	key, err := mls.GenerateSignatureKey(cs)
	return key, errStatus(err)
}

// newSignatureKey makes a signature key of a cipher suite number from the
// wire.
func newSignatureKey(suite uint32) (*mls.SignatureKey, error) {
	cs, err := cipherSuite(suite)
	if err != nil {
		return nil, err
	}
	return generateKey(cs)
}

func keyPackageMessage(kp *mls.KeyPackage) ([]byte, error) {
	return marshal(&mls.MLSMessage{WireFormat: mls.WireFormatKeyPackage, KeyPackage: kp})
}

func parseKeyPackage(data []byte) (*mls.KeyPackage, error) {
	m, err := parse(data, mls.WireFormatKeyPackage, "key package")
	if err != nil {
		return nil, err
	}
	return m.KeyPackage, nil
}

func parseWelcome(data []byte) (*mls.Welcome, error) {
	m, err := parse(data, mls.WireFormatWelcome, "welcome")
	if err != nil {
		return nil, err
	}
	return m.Welcome, nil
}

// openGroupInfo parses a GroupInfo message and opens it with the ratchet
// tree, if not nil.
func openGroupInfo(data, tree []byte) (*mls.MLSMessage, *mls.PublicGroup, error) {
	gim, err := parse(data, mls.WireFormatGroupInfo, "group info")
	if err != nil {
		return nil, nil, err
	}
	pg, err := mls.OpenGroupInfo(gim, tree)
	if err != nil {
		return nil, nil, errStatus(err)
	}
	return gim, pg, nil
}

// optional turns an empty byte string from the wire into nil: proto3 does
// not tell an absent field from an empty one.
func optional(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// extensions converts extensions from the wire, rejecting bad types and
// repeated ones.
func extensions(in []*pb.Extension) (mls.Extensions, error) {
	out := make(mls.Extensions, 0, len(in))
	seen := map[uint32]bool{}
	for _, e := range in {
		t := e.GetExtensionType()
		if t > 0xffff || seen[t] {
			return nil, invalid("bad or repeated extension type %d", t)
		}
		seen[t] = true
		out = append(out, mls.Extension{Type: mls.ExtensionType(t), Data: bytes.Clone(e.GetExtensionData())})
	}
	return out, nil
}

// memberIndex finds the leaf of the member with identity id.
func memberIndex(members []mls.Member, id []byte) (uint32, bool) {
	for _, m := range members {
		if m.Credential.Type == mls.CredentialBasic && bytes.Equal(m.Credential.Identity, id) {
			return m.Index, true
		}
	}
	return 0, false
}

// groupView is what proposal descriptions are resolved against.
type groupView struct {
	suite   mls.CipherSuite
	groupID []byte
	members []mls.Member
}

// proposal builds the proposal a ProposalDescription describes.
func proposal(d *pb.ProposalDescription, v groupView) (*mls.Proposal, error) {
	switch t := string(d.GetProposalType()); t {
	case "add":
		kp, err := parseKeyPackage(d.GetKeyPackage())
		if err != nil {
			return nil, err
		}
		return &mls.Proposal{Type: mls.ProposalAdd, Add: &mls.AddProposal{KeyPackage: *kp}}, nil
	case "remove":
		i, ok := memberIndex(v.members, d.GetRemovedId())
		if !ok {
			return nil, invalid("no member %q to remove", d.GetRemovedId())
		}
		return &mls.Proposal{Type: mls.ProposalRemove, Remove: &mls.RemoveProposal{Removed: i}}, nil
	case "externalPSK":
		p, err := mls.ExternalPSKProposal(v.suite, d.GetPskId())
		return p, errStatus(err)
	case "resumptionPSK":
		p, err := mls.ResumptionPSKProposal(v.suite, v.groupID, d.GetEpochId())
		return p, errStatus(err)
	case "groupContextExtensions":
		exts, err := extensions(d.GetExtensions())
		if err != nil {
			return nil, err
		}
		return &mls.Proposal{Type: mls.ProposalGroupContextExtensions, GroupContextExtensions: &mls.GroupContextExtensionsProposal{Extensions: exts}}, nil
	case "reinit":
		exts, err := extensions(d.GetExtensions())
		if err != nil {
			return nil, err
		}
		cs, err := cipherSuite(d.GetCipherSuite())
		if err != nil {
			return nil, err
		}
		return &mls.Proposal{Type: mls.ProposalReInit, ReInit: &mls.ReInitProposal{
			GroupID: bytes.Clone(d.GetGroupId()), Version: mls.MLS10, CipherSuite: cs, Extensions: exts}}, nil
	default:
		return nil, invalid("unknown proposal type %q", t)
	}
}

// --- Information about the client ---

// Name reports the implementation's name.
func (s *Server) Name(context.Context, *pb.NameRequest) (*pb.NameResponse, error) {
	return &pb.NameResponse{Name: Name}, nil
}

// SupportedCiphersuites lists the suites of RFC 9420 §17.1 the mls
// package implements.
func (s *Server) SupportedCiphersuites(context.Context, *pb.SupportedCiphersuitesRequest) (*pb.SupportedCiphersuitesResponse, error) {
	var out []uint32
	for cs := mls.CipherSuite(1); cs <= 7; cs++ {
		if cs.Supported() {
			out = append(out, uint32(cs))
		}
	}
	return &pb.SupportedCiphersuitesResponse{Ciphersuites: out}, nil
}

// --- Ways to become a member of a group ---

// CreateGroup creates a group with a new client as its only member.
func (s *Server) CreateGroup(_ context.Context, req *pb.CreateGroupRequest) (*pb.CreateGroupResponse, error) {
	key, err := newSignatureKey(req.GetCipherSuite())
	if err != nil {
		return nil, err
	}
	c := newClient(req.GetIdentity())
	g, err := mls.CreateGroup(key, c.credential(), mls.CreateGroupOptions{
		GroupID: bytes.Clone(req.GetGroupId()),
		Config:  c.config(req.GetEncryptHandshake()),
	})
	if err != nil {
		return nil, errStatus(err)
	}
	return &pb.CreateGroupResponse{StateId: s.register(newMember(c, key, g, req.GetEncryptHandshake()))}, nil
}

// CreateKeyPackage creates a new client and a KeyPackage for it. The
// private keys are not handed out.
func (s *Server) CreateKeyPackage(_ context.Context, req *pb.CreateKeyPackageRequest) (*pb.CreateKeyPackageResponse, error) {
	cs, err := cipherSuite(req.GetCipherSuite())
	if err != nil {
		return nil, err
	}
	j, err := newJoiner(newClient(req.GetIdentity()), cs)
	if err != nil {
		return nil, err
	}
	data, err := keyPackageMessage(j.kp.KeyPackage)
	if err != nil {
		return nil, err
	}
	return &pb.CreateKeyPackageResponse{TransactionId: s.register(j), KeyPackage: data}, nil
}

func newJoiner(c *client, cs mls.CipherSuite) (*joiner, error) {
	key, err := generateKey(cs)
	if err != nil {
		return nil, err
	}
	kp, err := mls.NewKeyPackage(key, mls.KeyPackageOptions{Credential: c.credential()})
	if err != nil {
		return nil, errStatus(err)
	}
	return &joiner{client: c, key: key, kp: kp}, nil
}

// joinFunc joins a group from a Welcome: mls.Join, or a group's
// JoinReInit or JoinBranch.
type joinFunc func(*mls.Welcome, *mls.KeyPackagePrivate, mls.JoinOptions) (*mls.Group, error)

// join joins a group from a Welcome as j, with the ratchet tree if the
// Welcome has none. On success the handle used, whose KeyPackage the
// Welcome consumed, is dropped, the KeyPackage's private keys are wiped,
// and the new state is stored; join returns its handle and epoch
// authenticator. The caller holds s.mu.
func (s *Server) join(joinFn joinFunc, w *mls.Welcome, tree []byte, j joiner, encrypt bool, used uint32) (uint32, []byte, error) {
	g, err := joinFn(w, j.kp, mls.JoinOptions{RatchetTree: optional(tree), Config: j.client.config(encrypt)})
	if err != nil {
		return 0, nil, errStatus(err)
	}
	delete(s.handles, used)
	j.kp.Wipe()
	return s.add(newMember(j.client, j.key, g, encrypt)), g.EpochAuthenticator(), nil
}

// JoinGroup joins a group from a Welcome for a transaction's KeyPackage.
func (s *Server) JoinGroup(_ context.Context, req *pb.JoinGroupRequest) (*pb.JoinGroupResponse, error) {
	w, err := parseWelcome(req.GetWelcome())
	if err != nil {
		return nil, err
	}
	return with(s, req.GetTransactionId(), "transaction", func(j *joiner) (*pb.JoinGroupResponse, error) {
		id, auth, err := s.join(mls.Join, w, req.GetRatchetTree(), *j, req.GetEncryptHandshake(), req.GetTransactionId())
		if err != nil {
			return nil, err
		}
		return &pb.JoinGroupResponse{StateId: id, EpochAuthenticator: auth}, nil
	})
}

// ExternalJoin joins a group by external commit as a new client.
func (s *Server) ExternalJoin(_ context.Context, req *pb.ExternalJoinRequest) (*pb.ExternalJoinResponse, error) {
	tree := optional(req.GetRatchetTree())
	gim, pg, err := openGroupInfo(req.GetGroupInfo(), tree)
	if err != nil {
		return nil, err
	}
	c := newClient(req.GetIdentity())
	opts := mls.ExternalJoinOptions{RatchetTree: tree, Config: c.config(req.GetEncryptHandshake())}
	for _, p := range req.GetPsks() {
		c.psks[string(p.GetPskId())] = bytes.Clone(p.GetPskSecret())
		opts.ExternalPSKs = append(opts.ExternalPSKs, bytes.Clone(p.GetPskId()))
	}
	if req.GetRemovePrior() {
		// A client that lost its state rejoins and removes its old leaf;
		// with no old leaf it simply joins.
		if i, ok := memberIndex(pg.Members(), c.identity); ok {
			opts.RemoveOld = &i
		}
	}
	key, err := generateKey(pg.CipherSuite())
	if err != nil {
		return nil, err
	}
	g, commit, err := mls.ExternalJoin(gim, key, c.credential(), opts)
	if err != nil {
		return nil, errStatus(err)
	}
	data, err := marshal(commit)
	if err != nil {
		return nil, err
	}
	auth := g.EpochAuthenticator()
	return &pb.ExternalJoinResponse{StateId: s.register(newMember(c, key, g, req.GetEncryptHandshake())), Commit: data, EpochAuthenticator: auth}, nil
}

// --- Operations using a group state ---

// GroupInfo returns a signed GroupInfo of the current epoch, with the
// ratchet tree inline or, if external_tree is set, separately.
func (s *Server) GroupInfo(_ context.Context, req *pb.GroupInfoRequest) (*pb.GroupInfoResponse, error) {
	return onState(s, req.GetStateId(), func(m *member) (*pb.GroupInfoResponse, error) {
		data, err := encoded(m.group.GroupInfo(!req.GetExternalTree()))
		if err != nil {
			return nil, err
		}
		resp := &pb.GroupInfoResponse{GroupInfo: data}
		if req.GetExternalTree() {
			resp.RatchetTree = m.group.RatchetTree()
		}
		return resp, nil
	})
}

// StateAuth returns the epoch authenticator (§8.7).
func (s *Server) StateAuth(_ context.Context, req *pb.StateAuthRequest) (*pb.StateAuthResponse, error) {
	return onState(s, req.GetStateId(), func(m *member) (*pb.StateAuthResponse, error) {
		auth := m.group.EpochAuthenticator()
		if auth == nil {
			return nil, status.Error(codes.FailedPrecondition, "no longer a member of the group")
		}
		return &pb.StateAuthResponse{StateAuthSecret: auth}, nil
	})
}

// maxExportLength is the largest length ExpandWithLabel can encode.
const maxExportLength = 0xffff

// Export is MLS-Exporter (§8.5).
func (s *Server) Export(_ context.Context, req *pb.ExportRequest) (*pb.ExportResponse, error) {
	if req.GetKeyLength() > maxExportLength {
		return nil, invalid("key length %d exceeds %d", req.GetKeyLength(), maxExportLength)
	}
	return onState(s, req.GetStateId(), func(m *member) (*pb.ExportResponse, error) {
		out, err := m.group.Export(req.GetLabel(), req.GetContext(), int(req.GetKeyLength()))
		if err != nil {
			return nil, errStatus(err)
		}
		return &pb.ExportResponse{ExportedSecret: out}, nil
	})
}

// Protect encrypts application data as a PrivateMessage.
func (s *Server) Protect(_ context.Context, req *pb.ProtectRequest) (*pb.ProtectResponse, error) {
	return onState(s, req.GetStateId(), func(m *member) (*pb.ProtectResponse, error) {
		data, err := encoded(m.group.Encrypt(req.GetPlaintext(), req.GetAuthenticatedData()))
		if err != nil {
			return nil, err
		}
		return &pb.ProtectResponse{Ciphertext: data}, nil
	})
}

// Unprotect decrypts an application message of this epoch or a retained
// earlier one.
func (s *Server) Unprotect(_ context.Context, req *pb.UnprotectRequest) (*pb.UnprotectResponse, error) {
	msg, err := parse(req.GetCiphertext(), mls.WireFormatPrivateMessage, "ciphertext")
	if err != nil {
		return nil, err
	}
	return onState(s, req.GetStateId(), func(m *member) (*pb.UnprotectResponse, error) {
		ev, err := m.group.Process(msg)
		if err != nil {
			return nil, errStatus(err)
		}
		am, ok := ev.(*mls.ApplicationMessage)
		if !ok {
			return nil, invalid("not an application message")
		}
		return &pb.UnprotectResponse{AuthenticatedData: am.AuthenticatedData, Plaintext: am.Data}, nil
	})
}

// StorePSK installs an external PSK for the client behind a state,
// transaction or pending re-initialisation.
func (s *Server) StorePSK(_ context.Context, req *pb.StorePSKRequest) (*pb.StorePSKResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var c *client
	switch h := s.handles[req.GetStateOrTransactionId()].(type) {
	case *member:
		c = h.client
	case *joiner:
		c = h.client
	case *reinit:
		c = h.old.client
	default:
		return nil, status.Errorf(codes.NotFound, "no state or transaction with id %d", req.GetStateOrTransactionId())
	}
	c.psks[string(req.GetPskId())] = bytes.Clone(req.GetPskSecret())
	return &pb.StorePSKResponse{}, nil
}

// propose runs one of a member's Propose methods and remembers the
// proposal as its own.
func (s *Server) propose(id uint32, build func(*member) (*mls.MLSMessage, error)) (*pb.ProposalResponse, error) {
	return onState(s, id, func(m *member) (*pb.ProposalResponse, error) {
		data, err := encoded(build(m))
		if err != nil {
			return nil, err
		}
		m.own[string(data)] = true
		return &pb.ProposalResponse{Proposal: data}, nil
	})
}

// AddProposal proposes to add the client of a KeyPackage.
func (s *Server) AddProposal(_ context.Context, req *pb.AddProposalRequest) (*pb.ProposalResponse, error) {
	kp, err := parseKeyPackage(req.GetKeyPackage())
	if err != nil {
		return nil, err
	}
	return s.propose(req.GetStateId(), func(m *member) (*mls.MLSMessage, error) { return m.group.ProposeAdd(kp) })
}

// UpdateProposal proposes a fresh leaf key for ourselves.
func (s *Server) UpdateProposal(_ context.Context, req *pb.UpdateProposalRequest) (*pb.ProposalResponse, error) {
	return s.propose(req.GetStateId(), func(m *member) (*mls.MLSMessage, error) { return m.group.ProposeUpdate() })
}

// RemoveProposal proposes to remove the member with identity removed_id.
func (s *Server) RemoveProposal(_ context.Context, req *pb.RemoveProposalRequest) (*pb.ProposalResponse, error) {
	return s.propose(req.GetStateId(), func(m *member) (*mls.MLSMessage, error) {
		i, ok := memberIndex(m.group.Members(), req.GetRemovedId())
		if !ok {
			return nil, invalid("no member %q to remove", req.GetRemovedId())
		}
		return m.group.ProposeRemove(i)
	})
}

// ExternalPSKProposal proposes to mix in an external PSK.
func (s *Server) ExternalPSKProposal(_ context.Context, req *pb.ExternalPSKProposalRequest) (*pb.ProposalResponse, error) {
	return s.propose(req.GetStateId(), func(m *member) (*mls.MLSMessage, error) { return m.group.ProposeExternalPSK(req.GetPskId()) })
}

// ResumptionPSKProposal proposes to mix in the resumption PSK of an
// earlier epoch.
func (s *Server) ResumptionPSKProposal(_ context.Context, req *pb.ResumptionPSKProposalRequest) (*pb.ProposalResponse, error) {
	return s.propose(req.GetStateId(), func(m *member) (*mls.MLSMessage, error) { return m.group.ProposeResumptionPSK(req.GetEpochId()) })
}

// GroupContextExtensionsProposal proposes new GroupContext extensions.
func (s *Server) GroupContextExtensionsProposal(_ context.Context, req *pb.GroupContextExtensionsProposalRequest) (*pb.ProposalResponse, error) {
	exts, err := extensions(req.GetExtensions())
	if err != nil {
		return nil, err
	}
	return s.propose(req.GetStateId(), func(m *member) (*mls.MLSMessage, error) { return m.group.ProposeGroupContextExtensions(exts) })
}

// ReInitProposal proposes to re-initialise the group.
func (s *Server) ReInitProposal(_ context.Context, req *pb.ReInitProposalRequest) (*pb.ProposalResponse, error) {
	cs, err := cipherSuite(req.GetCipherSuite())
	if err != nil {
		return nil, err
	}
	exts, err := extensions(req.GetExtensions())
	if err != nil {
		return nil, err
	}
	return s.propose(req.GetStateId(), func(m *member) (*mls.MLSMessage, error) {
		return m.group.ProposeReInit(bytes.Clone(req.GetGroupId()), cs, exts)
	})
}

// --- Commits ---

// receiveProposals processes the proposals a commit includes by
// reference, skipping those we sent ourselves.
func (m *member) receiveProposals(raw [][]byte) error {
	for _, data := range raw {
		if m.own[string(data)] {
			continue
		}
		msg, err := mls.UnmarshalMLSMessage(data)
		if err != nil {
			return invalid("proposal: %v", err)
		}
		ev, err := m.group.Process(msg)
		if err != nil {
			return errStatus(err)
		}
		if _, ok := ev.(*mls.ProposalEvent); !ok {
			return invalid("not a proposal")
		}
	}
	return nil
}

// Commit commits the proposals given by reference (after processing
// them), those we sent this epoch, and those described by value.
func (s *Server) Commit(_ context.Context, req *pb.CommitRequest) (*pb.CommitResponse, error) {
	return onState(s, req.GetStateId(), func(m *member) (*pb.CommitResponse, error) {
		if m.group.HasPendingCommit() {
			return nil, status.Error(codes.FailedPrecondition, "a commit is already pending")
		}
		if err := m.receiveProposals(req.GetByReference()); err != nil {
			return nil, err
		}
		v := groupView{suite: m.group.CipherSuite(), groupID: m.group.GroupID(), members: m.group.Members()}
		props := make([]*mls.Proposal, 0, len(req.GetByValue()))
		for _, d := range req.GetByValue() {
			p, err := proposal(d, v)
			if err != nil {
				return nil, err
			}
			props = append(props, p)
		}
		res, err := m.group.CommitInline(mls.CommitOptions{ForcePath: req.GetForcePath(), InlineTree: !req.GetExternalTree()}, props...)
		if err != nil {
			return nil, errStatus(err)
		}
		commit, err := marshal(res.Commit)
		var welcome []byte
		if err == nil {
			welcome, err = marshal(res.Welcome)
		}
		if err != nil {
			m.group.DiscardPendingCommit()
			return nil, err
		}
		resp := &pb.CommitResponse{Commit: commit, Welcome: welcome}
		if req.GetExternalTree() {
			resp.RatchetTree = res.Staged.RatchetTree()
		}
		return resp, nil
	})
}

// ReInitCommit commits a ReInit proposal given by reference.
func (s *Server) ReInitCommit(ctx context.Context, req *pb.CommitRequest) (*pb.CommitResponse, error) {
	return s.Commit(ctx, req)
}

// HandleCommit processes the proposals a commit includes by reference and
// the commit, and enters the new epoch.
func (s *Server) HandleCommit(_ context.Context, req *pb.HandleCommitRequest) (*pb.HandleCommitResponse, error) {
	return s.applyCommit(req.GetStateId(), func(m *member) error { return m.handleCommit(req) })
}

// applyCommit runs apply (handleCommit or mergePending) on the state id
// and answers with the new epoch's authenticator.
func (s *Server) applyCommit(id uint32, apply func(*member) error) (*pb.HandleCommitResponse, error) {
	return onState(s, id, func(m *member) (*pb.HandleCommitResponse, error) {
		if err := apply(m); err != nil {
			return nil, err
		}
		return &pb.HandleCommitResponse{StateId: id, EpochAuthenticator: m.group.EpochAuthenticator()}, nil
	})
}

// handleCommit is HandleCommit on m. The caller holds s.mu.
func (m *member) handleCommit(req *pb.HandleCommitRequest) error {
	commit, err := mls.UnmarshalMLSMessage(req.GetCommit())
	if err != nil {
		return invalid("commit: %v", err)
	}
	if err := m.receiveProposals(req.GetProposal()); err != nil {
		return err
	}
	ev, err := m.group.Process(commit)
	if err != nil {
		return errStatus(err)
	}
	sc, ok := ev.(*mls.StagedCommit)
	if !ok {
		return invalid("not a commit")
	}
	if err := m.group.Merge(sc); err != nil {
		return errStatus(err)
	}
	m.newEpoch()
	return nil
}

// newEpoch forgets the proposals of the epoch that ended.
func (m *member) newEpoch() { clear(m.own) }

// HandlePendingCommit applies the commit we sent last.
func (s *Server) HandlePendingCommit(_ context.Context, req *pb.HandlePendingCommitRequest) (*pb.HandleCommitResponse, error) {
	return s.applyCommit(req.GetStateId(), (*member).mergePending)
}

// mergePending is HandlePendingCommit on m. The caller holds s.mu.
func (m *member) mergePending() error {
	if !m.group.HasPendingCommit() {
		return status.Error(codes.FailedPrecondition, "no pending commit")
	}
	if err := m.group.MergePendingCommit(); err != nil {
		return errStatus(err)
	}
	m.newEpoch()
	return nil
}

// --- Reinitialisation ---

// HandlePendingReInitCommit applies our commit of a ReInit and prepares
// a KeyPackage for the new group.
func (s *Server) HandlePendingReInitCommit(_ context.Context, req *pb.HandlePendingCommitRequest) (*pb.HandleReInitCommitResponse, error) {
	return s.applyReInitCommit(req.GetStateId(), (*member).mergePending)
}

// HandleReInitCommit applies a commit of a ReInit and prepares a
// KeyPackage for the new group.
func (s *Server) HandleReInitCommit(_ context.Context, req *pb.HandleCommitRequest) (*pb.HandleReInitCommitResponse, error) {
	return s.applyReInitCommit(req.GetStateId(), func(m *member) error { return m.handleCommit(req) })
}

// applyReInitCommit runs apply (handleCommit or mergePending) on the
// state id, then startReInit.
func (s *Server) applyReInitCommit(id uint32, apply func(*member) error) (*pb.HandleReInitCommitResponse, error) {
	return onState(s, id, func(m *member) (*pb.HandleReInitCommitResponse, error) {
		if err := apply(m); err != nil {
			return nil, err
		}
		return s.startReInit(m)
	})
}

// startReInit makes the signature key (a new one if the cipher suite
// changes) and KeyPackage of m's client for the group replacing m's.
// The caller holds s.mu.
func (s *Server) startReInit(m *member) (*pb.HandleReInitCommitResponse, error) {
	r := m.group.ReInit()
	if r == nil {
		return nil, status.Error(codes.FailedPrecondition, "the commit did not re-initialise the group")
	}
	key := m.key
	if r.CipherSuite != key.CipherSuite() {
		var err error
		if key, err = generateKey(r.CipherSuite); err != nil {
			return nil, err
		}
	}
	kp, err := mls.NewKeyPackage(key, mls.KeyPackageOptions{Credential: m.client.credential()})
	if err != nil {
		return nil, errStatus(err)
	}
	data, err := keyPackageMessage(kp.KeyPackage)
	if err != nil {
		return nil, err
	}
	id := s.add(&reinit{old: m, key: key, kp: kp})
	return &pb.HandleReInitCommitResponse{ReinitId: id, KeyPackage: data, EpochAuthenticator: m.group.EpochAuthenticator()}, nil
}

// ReInitWelcome creates the group replacing a re-initialised one, adding
// the other members by their KeyPackages.
func (s *Server) ReInitWelcome(_ context.Context, req *pb.ReInitWelcomeRequest) (*pb.CreateSubgroupResponse, error) {
	kps, err := keyPackages(req.GetKeyPackage())
	if err != nil {
		return nil, err
	}
	return with(s, req.GetReinitId(), "reinit", func(r *reinit) (*pb.CreateSubgroupResponse, error) {
		o := mls.ResumeOptions{ForcePath: req.GetForcePath(), InlineTree: !req.GetExternalTree(), Config: r.old.client.config(r.old.encrypt)}
		g, w, err := r.old.group.ReInitGroup(r.key, kps, o)
		if err != nil {
			return nil, errStatus(err)
		}
		delete(s.handles, req.GetReinitId())
		r.kp.Wipe()
		return s.subgroup(newMember(r.old.client, r.key, g, r.old.encrypt), w, req.GetExternalTree())
	})
}

// subgroup registers the first member of a new group and describes it.
// The caller holds s.mu.
func (s *Server) subgroup(m *member, w *mls.MLSMessage, externalTree bool) (*pb.CreateSubgroupResponse, error) {
	welcome, err := marshal(w)
	if err != nil {
		return nil, err
	}
	resp := &pb.CreateSubgroupResponse{StateId: s.add(m), Welcome: welcome, EpochAuthenticator: m.group.EpochAuthenticator()}
	if externalTree {
		resp.RatchetTree = m.group.RatchetTree()
	}
	return resp, nil
}

func keyPackages(raw [][]byte) ([]*mls.KeyPackage, error) {
	kps := make([]*mls.KeyPackage, len(raw))
	for i, data := range raw {
		var err error
		if kps[i], err = parseKeyPackage(data); err != nil {
			return nil, err
		}
	}
	return kps, nil
}

// HandleReInitWelcome joins the group replacing a re-initialised one.
func (s *Server) HandleReInitWelcome(_ context.Context, req *pb.HandleReInitWelcomeRequest) (*pb.JoinGroupResponse, error) {
	w, err := parseWelcome(req.GetWelcome())
	if err != nil {
		return nil, err
	}
	return with(s, req.GetReinitId(), "reinit", func(r *reinit) (*pb.JoinGroupResponse, error) {
		j := joiner{client: r.old.client, key: r.key, kp: r.kp}
		id, auth, err := s.join(r.old.group.JoinReInit, w, req.GetRatchetTree(), j, r.old.encrypt, req.GetReinitId())
		if err != nil {
			return nil, err
		}
		return &pb.JoinGroupResponse{StateId: id, EpochAuthenticator: auth}, nil
	})
}

// --- Subgroup branching ---

// CreateBranch creates a group branched from a member's group (§11.3).
func (s *Server) CreateBranch(_ context.Context, req *pb.CreateBranchRequest) (*pb.CreateSubgroupResponse, error) {
	kps, err := keyPackages(req.GetKeyPackages())
	if err != nil {
		return nil, err
	}
	exts, err := extensions(req.GetExtensions())
	if err != nil {
		return nil, err
	}
	return onState(s, req.GetStateId(), func(m *member) (*pb.CreateSubgroupResponse, error) {
		o := mls.ResumeOptions{ForcePath: req.GetForcePath(), InlineTree: !req.GetExternalTree(), Config: m.client.config(m.encrypt)}
		g, w, err := m.group.Branch(bytes.Clone(req.GetGroupId()), exts, kps, o)
		if err != nil {
			return nil, errStatus(err)
		}
		return s.subgroup(newMember(m.client, m.key, g, m.encrypt), w, req.GetExternalTree())
	})
}

// HandleBranch joins a group branched from a member's group, with the
// KeyPackage of a transaction.
func (s *Server) HandleBranch(_ context.Context, req *pb.HandleBranchRequest) (*pb.HandleBranchResponse, error) {
	w, err := parseWelcome(req.GetWelcome())
	if err != nil {
		return nil, err
	}
	return onState(s, req.GetStateId(), func(m *member) (*pb.HandleBranchResponse, error) {
		tx, err := lookup[*joiner](s, req.GetTransactionId(), "transaction")
		if err != nil {
			return nil, err
		}
		j := joiner{client: m.client, key: tx.key, kp: tx.kp}
		id, auth, err := s.join(m.group.JoinBranch, w, req.GetRatchetTree(), j, m.encrypt, req.GetTransactionId())
		if err != nil {
			return nil, err
		}
		return &pb.HandleBranchResponse{StateId: id, EpochAuthenticator: auth}, nil
	})
}

// --- External proposals ---

// NewMemberAddProposal creates a new client and its proposal to add
// itself to the group a GroupInfo describes (§12.1.8.2).
func (s *Server) NewMemberAddProposal(_ context.Context, req *pb.NewMemberAddProposalRequest) (*pb.NewMemberAddProposalResponse, error) {
	_, pg, err := openGroupInfo(req.GetGroupInfo(), nil)
	if err != nil {
		return nil, err
	}
	j, err := newJoiner(newClient(req.GetIdentity()), pg.CipherSuite())
	if err != nil {
		return nil, err
	}
	data, err := encoded(pg.NewMemberProposal(j.kp))
	if err != nil {
		return nil, err
	}
	return &pb.NewMemberAddProposalResponse{TransactionId: s.register(j), Proposal: data}, nil
}

// CreateExternalSigner creates an external sender (§12.1.8.1) and returns
// its ExternalSender entry.
func (s *Server) CreateExternalSigner(_ context.Context, req *pb.CreateExternalSignerRequest) (*pb.CreateExternalSignerResponse, error) {
	key, err := newSignatureKey(req.GetCipherSuite())
	if err != nil {
		return nil, err
	}
	es := mls.ExternalSender{SignatureKey: key.Public(), Credential: mls.BasicCredential(bytes.Clone(req.GetIdentity()))}
	data, err := es.Marshal()
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &pb.CreateExternalSignerResponse{SignerId: s.register(&signer{key: key}), ExternalSender: data}, nil
}

// AddExternalSigner proposes GroupContext extensions that list one more
// external sender.
func (s *Server) AddExternalSigner(_ context.Context, req *pb.AddExternalSignerRequest) (*pb.ProposalResponse, error) {
	es, err := mls.UnmarshalExternalSender(req.GetExternalSender())
	if err != nil {
		return nil, invalid("external sender: %v", err)
	}
	return s.propose(req.GetStateId(), func(m *member) (*mls.MLSMessage, error) {
		exts, err := mls.WithExternalSender(m.group.Extensions(), *es)
		if err != nil {
			return nil, err
		}
		return m.group.ProposeGroupContextExtensions(exts)
	})
}

// ExternalSignerProposal makes an external sender's proposal to the group
// a GroupInfo and ratchet tree describe. The sender's index is found from
// its key in the group's external_senders extension; signer_index need not
// be set.
func (s *Server) ExternalSignerProposal(_ context.Context, req *pb.ExternalSignerProposalRequest) (*pb.ProposalResponse, error) {
	_, pg, err := openGroupInfo(req.GetGroupInfo(), optional(req.GetRatchetTree()))
	if err != nil {
		return nil, err
	}
	if req.GetDescription() == nil {
		return nil, invalid("missing proposal description")
	}
	p, err := proposal(req.GetDescription(), groupView{suite: pg.CipherSuite(), groupID: pg.GroupID(), members: pg.Members()})
	if err != nil {
		return nil, err
	}
	key, err := with(s, req.GetSignerId(), "signer", func(sg *signer) (*mls.SignatureKey, error) { return sg.key, nil })
	if err != nil {
		return nil, err
	}
	data, err := encoded(pg.ExternalProposal(key, p))
	if err != nil {
		return nil, err
	}
	return &pb.ProposalResponse{Proposal: data}, nil
}

// Free forgets a state (or any other handle).
func (s *Server) Free(_ context.Context, req *pb.FreeRequest) (*pb.FreeResponse, error) {
	return with(s, req.GetStateId(), "state", func(any) (*pb.FreeResponse, error) {
		delete(s.handles, req.GetStateId())
		return &pb.FreeResponse{}, nil
	})
}
