package mlsinterop

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hush-chat/hush/internal/mlsinterop/pb"
)

// wantCode checks that err is a gRPC status with code want.
func wantCode(t *testing.T, what string, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Errorf("%s: code %v (%v), want %v", what, got, err, want)
	}
}

// twoMembers returns a server with alice's group, which bob has joined.
func twoMembers(t *testing.T, s *Server) (alice, bob uint32, welcome []byte) {
	t.Helper()
	ctx := context.Background()
	g, err := s.CreateGroup(ctx, &pb.CreateGroupRequest{GroupId: []byte("g"), CipherSuite: 1, Identity: []byte("alice")})
	if err != nil {
		t.Fatal(err)
	}
	kp, err := s.CreateKeyPackage(ctx, &pb.CreateKeyPackageRequest{CipherSuite: 1, Identity: []byte("bob")})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Commit(ctx, &pb.CommitRequest{StateId: g.GetStateId(), ByValue: []*pb.ProposalDescription{{ProposalType: []byte("add"), KeyPackage: kp.GetKeyPackage()}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.HandlePendingCommit(ctx, &pb.HandlePendingCommitRequest{StateId: g.GetStateId()}); err != nil {
		t.Fatal(err)
	}
	j, err := s.JoinGroup(ctx, &pb.JoinGroupRequest{TransactionId: kp.GetTransactionId(), Welcome: c.GetWelcome()})
	if err != nil {
		t.Fatal(err)
	}
	return g.GetStateId(), j.GetStateId(), c.GetWelcome()
}

func TestServerRejectsBadInput(t *testing.T) {
	ctx := context.Background()
	s := NewServer()
	alice, bob, welcome := twoMembers(t, s)

	_, err := s.CreateGroup(ctx, &pb.CreateGroupRequest{CipherSuite: 4})
	wantCode(t, "X448 suite", err, codes.InvalidArgument)
	_, err = s.CreateKeyPackage(ctx, &pb.CreateKeyPackageRequest{CipherSuite: 0x10001})
	wantCode(t, "suite beyond uint16", err, codes.InvalidArgument)
	_, err = s.JoinGroup(ctx, &pb.JoinGroupRequest{TransactionId: 1, Welcome: []byte{0, 1, 0, 3, 0xff}})
	wantCode(t, "malformed welcome", err, codes.InvalidArgument)
	_, err = s.JoinGroup(ctx, &pb.JoinGroupRequest{TransactionId: 999, Welcome: welcome})
	wantCode(t, "unknown transaction", err, codes.NotFound)
	_, err = s.StateAuth(ctx, &pb.StateAuthRequest{StateId: 999})
	wantCode(t, "unknown state", err, codes.NotFound)
	_, err = s.AddProposal(ctx, &pb.AddProposalRequest{StateId: alice, KeyPackage: welcome})
	wantCode(t, "a Welcome as KeyPackage", err, codes.InvalidArgument)
	_, err = s.RemoveProposal(ctx, &pb.RemoveProposalRequest{StateId: alice, RemovedId: []byte("carol")})
	wantCode(t, "remove a stranger", err, codes.InvalidArgument)
	_, err = s.Export(ctx, &pb.ExportRequest{StateId: alice, KeyLength: 1 << 20})
	wantCode(t, "export too long", err, codes.InvalidArgument)
	_, err = s.HandlePendingCommit(ctx, &pb.HandlePendingCommitRequest{StateId: alice})
	wantCode(t, "no pending commit", err, codes.FailedPrecondition)
	_, err = s.GroupContextExtensionsProposal(ctx, &pb.GroupContextExtensionsProposalRequest{StateId: alice,
		Extensions: []*pb.Extension{{ExtensionType: 3}, {ExtensionType: 3}}})
	wantCode(t, "repeated extension", err, codes.InvalidArgument)
	_, err = s.Commit(ctx, &pb.CommitRequest{StateId: alice, ByValue: []*pb.ProposalDescription{{ProposalType: []byte("appAck")}}})
	wantCode(t, "unknown proposal type", err, codes.InvalidArgument)
	_, err = s.ExternalSignerProposal(ctx, &pb.ExternalSignerProposalRequest{SignerId: 999, GroupInfo: []byte{1}})
	wantCode(t, "garbage group info", err, codes.InvalidArgument)

	// A tampered ciphertext is refused; the genuine one still decrypts.
	ct, err := s.Protect(ctx, &pb.ProtectRequest{StateId: alice, Plaintext: []byte("hi")})
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), ct.GetCiphertext()...)
	bad[len(bad)-1] ^= 1
	_, err = s.Unprotect(ctx, &pb.UnprotectRequest{StateId: bob, Ciphertext: bad})
	wantCode(t, "tampered ciphertext", err, codes.InvalidArgument)
	pt, err := s.Unprotect(ctx, &pb.UnprotectRequest{StateId: bob, Ciphertext: ct.GetCiphertext()})
	if err != nil || string(pt.GetPlaintext()) != "hi" {
		t.Fatalf("genuine ciphertext: %q, %v", pt.GetPlaintext(), err)
	}
	_, err = s.Unprotect(ctx, &pb.UnprotectRequest{StateId: bob, Ciphertext: ct.GetCiphertext()})
	wantCode(t, "replayed ciphertext", err, codes.FailedPrecondition)

	// A commit applies once.
	c, err := s.Commit(ctx, &pb.CommitRequest{StateId: alice})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.HandleCommit(ctx, &pb.HandleCommitRequest{StateId: bob, Commit: c.GetCommit()}); err != nil {
		t.Fatal(err)
	}
	_, err = s.HandleCommit(ctx, &pb.HandleCommitRequest{StateId: bob, Commit: c.GetCommit()})
	wantCode(t, "commit applied twice", err, codes.FailedPrecondition)

	if _, err := s.Free(ctx, &pb.FreeRequest{StateId: bob}); err != nil {
		t.Fatal(err)
	}
	_, err = s.Free(ctx, &pb.FreeRequest{StateId: bob})
	wantCode(t, "freed twice", err, codes.NotFound)
	_, err = s.StateAuth(ctx, &pb.StateAuthRequest{StateId: bob})
	wantCode(t, "freed state", err, codes.NotFound)
}

func TestRecoverPanics(t *testing.T) {
	_, err := recoverPanics(context.Background(), nil, &grpc.UnaryServerInfo{}, func(context.Context, any) (any, error) {
		panic("secret 1234")
	})
	wantCode(t, "panicking handler", err, codes.Internal)
	if err != nil && status.Convert(err).Message() != "internal error" {
		t.Errorf("panic value leaked into %q", status.Convert(err).Message())
	}
}

// lyingClient reports a wrong epoch authenticator from HandleCommit and
// a wrong plaintext from Unprotect.
type lyingClient struct {
	pb.MLSClientClient
}

func (c lyingClient) HandleCommit(ctx context.Context, in *pb.HandleCommitRequest, opts ...grpc.CallOption) (*pb.HandleCommitResponse, error) {
	resp, err := c.MLSClientClient.HandleCommit(ctx, in, opts...)
	if err == nil {
		resp.EpochAuthenticator = append(resp.EpochAuthenticator, 0)
	}
	return resp, err
}

func (c lyingClient) Unprotect(ctx context.Context, in *pb.UnprotectRequest, opts ...grpc.CallOption) (*pb.UnprotectResponse, error) {
	resp, err := c.MLSClientClient.Unprotect(ctx, in, opts...)
	if err == nil {
		resp.Plaintext = append(resp.Plaintext, '!')
	}
	return resp, err
}

// The runner must notice members that disagree on the epoch, and
// plaintexts that do not round-trip.
func TestRunnerDetectsDisagreement(t *testing.T) {
	clients := startServers(t, 2)
	liar := &Client{Name: "liar", RPC: lyingClient{clients[1].RPC}, Supported: clients[1].Supported}
	for _, tc := range []struct {
		config, script string
		step           int
	}{
		{"commit", "empty", 1},           // bob, the liar, handles alice's commit
		{"application", "in_order", 4},   // bob unprotects
		{"welcome_join", "with_psk", -1}, // bob only joins: the final check catches him
	} {
		script := loadConfig(t, tc.config).Scripts[tc.script]
		err := Run{Suite: 1, Clients: []*Client{clients[0], liar}}.Play(context.Background(), script)
		var se *StepError
		if tc.step >= 0 && (!errors.As(err, &se) || se.Index != tc.step) || tc.step < 0 && err == nil {
			t.Errorf("%s/%s: the liar went unnoticed: %v", tc.config, tc.script, err)
		}
	}
}
