package mlsinterop

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/hush-chat/hush/internal/mlsinterop/pb"
)

// This file is a test runner for the harness's scripts (the configs/
// directory of the interop harness): each script is a list of steps, each
// performed by an actor, and each actor is played by one of the clients.
// The runner checks every result the way the harness's own runner does —
// members agree on the epoch authenticator after each commit, a joiner
// agrees with the members, unprotect returns what was protected — and,
// after the last step, verifies the group state as the harness's scenarios
// describe: all members share the authentication and exported secrets, and
// a message from each member decrypts at every other.

// Config is a configuration file: named scripts.
type Config struct {
	Scripts map[string]Script `json:"scripts"`
}

// LoadConfig reads a configuration file.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}

// Script is a scenario: its steps in order. Steps refer to the outputs of
// earlier steps by their index.
type Script []Step

// Step is one action of a script; Raw keeps its parameters.
type Step struct {
	Action string
	Actor  string
	Raw    json.RawMessage
}

// UnmarshalJSON reads a step, keeping its parameters for the action.
func (s *Step) UnmarshalJSON(data []byte) error {
	var head struct {
		Action string `json:"action"`
		Actor  string `json:"actor"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return err
	}
	if head.Action == "" {
		return fmt.Errorf("step without an action: %s", data)
	}
	s.Action, s.Actor, s.Raw = head.Action, head.Actor, bytes.Clone(data)
	return nil
}

// Actors lists the script's actors in order of first appearance.
func (sc Script) Actors() []string {
	var out []string
	add := func(names ...string) {
		for _, n := range names {
			if n != "" && !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	for _, st := range sc {
		var p struct {
			Members   []string `json:"members"`
			Joiner    string   `json:"joiner"`
			Signer    string   `json:"signer"`
			Proposer  string   `json:"proposer"`
			Committer string   `json:"committer"`
			Welcomer  string   `json:"welcomer"`
		}
		_ = json.Unmarshal(st.Raw, &p) // a malformed step fails when it runs
		add(st.Actor, p.Proposer, p.Committer, p.Welcomer, p.Joiner, p.Signer)
		add(p.Members...)
	}
	return out
}

// Client is one MLS client implementation the runner drives.
type Client struct {
	Name      string
	RPC       pb.MLSClientClient
	Supported []uint32
}

// NewClient asks a service for its name and cipher suites.
func NewClient(ctx context.Context, rpc pb.MLSClientClient) (*Client, error) {
	name, err := rpc.Name(ctx, &pb.NameRequest{})
	if err != nil {
		return nil, err
	}
	suites, err := rpc.SupportedCiphersuites(ctx, &pb.SupportedCiphersuitesRequest{})
	if err != nil {
		return nil, err
	}
	return &Client{Name: name.GetName(), RPC: rpc, Supported: suites.GetCiphersuites()}, nil
}

// Run is one play of a script: a cipher suite, a handshake mode and an
// assignment of clients to actors.
type Run struct {
	Suite            uint32
	EncryptHandshake bool
	// Clients play the actors in turn, in order of first appearance,
	// starting with Clients[Offset % len(Clients)].
	Clients []*Client
	Offset  int
	// Steps, if positive, plays only the first Steps steps.
	Steps int
	// Timeout bounds each call; default one minute.
	Timeout time.Duration
}

// StepError says which step of a script failed.
type StepError struct {
	Index  int
	Action string
	Err    error
}

func (e *StepError) Error() string { return fmt.Sprintf("step %d (%s): %v", e.Index, e.Action, e.Err) }

func (e *StepError) Unwrap() error { return e.Err }

// Play runs the script and verifies the final group state.
func (r Run) Play(ctx context.Context, sc Script) error {
	if len(r.Clients) == 0 {
		return fmt.Errorf("no clients")
	}
	p := &player{run: r, suite: r.Suite, clients: map[string]*Client{}, state: map[string]uint32{},
		transaction: map[string]uint32{}, signer: map[string]uint32{}, out: make([]map[string][]byte, len(sc))}
	if p.run.Timeout <= 0 {
		p.run.Timeout = time.Minute
	}
	for i, a := range sc.Actors() {
		p.clients[a] = r.Clients[(r.Offset+i)%len(r.Clients)]
	}
	for i := range p.out {
		p.out[i] = map[string][]byte{}
	}
	steps := sc
	if r.Steps > 0 && r.Steps < len(sc) {
		steps = sc[:r.Steps]
	}
	for i, st := range steps {
		if err := p.step(ctx, i, st); err != nil {
			return &StepError{Index: i, Action: st.Action, Err: err}
		}
	}
	if err := p.verifyGroup(ctx); err != nil {
		return fmt.Errorf("final group state: %w", err)
	}
	return nil
}

// player is the state of one Run.
type player struct {
	run         Run
	suite       uint32 // may change with a ReInit
	clients     map[string]*Client
	state       map[string]uint32
	transaction map[string]uint32
	signer      map[string]uint32
	out         []map[string][]byte // outputs of each step, by name
	group       []string            // the actors in the group, as far as the script says
}

// callAs calls an RPC of actor's client, bounded by the run's timeout; an
// error says that actor failed to do what.
func callAs[R any](ctx context.Context, p *player, actor, what string, rpc func(context.Context, pb.MLSClientClient) (R, error)) (R, error) {
	var zero R
	c, err := p.client(actor)
	if err != nil {
		return zero, err
	}
	ctx, cancel := context.WithTimeout(ctx, p.run.Timeout)
	defer cancel()
	r, err := rpc(ctx, c.RPC)
	if err != nil {
		return zero, fmt.Errorf("%s %s: %w", actor, what, err)
	}
	return r, nil
}

// callOnState is callAs for an RPC on actor's group state.
func callOnState[R any](ctx context.Context, p *player, actor, what string, rpc func(context.Context, pb.MLSClientClient, uint32) (R, error)) (R, error) {
	_, id, err := p.stateOf(actor)
	if err != nil {
		var zero R
		return zero, err
	}
	return callAs(ctx, p, actor, what, func(ctx context.Context, c pb.MLSClientClient) (R, error) { return rpc(ctx, c, id) })
}

// output returns what step i produced under name.
func (p *player) output(i int, name string) ([]byte, error) {
	if i < 0 || i >= len(p.out) {
		return nil, fmt.Errorf("no step %d", i)
	}
	v, ok := p.out[i][name]
	if !ok {
		return nil, fmt.Errorf("step %d has no %s", i, name)
	}
	return v, nil
}

func (p *player) outputs(idx []int, name string) ([][]byte, error) {
	out := make([][]byte, len(idx))
	for k, i := range idx {
		var err error
		if out[k], err = p.output(i, name); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (p *player) client(actor string) (*Client, error) {
	c, ok := p.clients[actor]
	if !ok {
		return nil, fmt.Errorf("unknown actor %q", actor)
	}
	return c, nil
}

func (p *player) stateOf(actor string) (*Client, uint32, error) {
	c, err := p.client(actor)
	if err != nil {
		return nil, 0, err
	}
	id, ok := p.state[actor]
	if !ok {
		return nil, 0, fmt.Errorf("%s has no group state", actor)
	}
	return c, id, nil
}

func (p *player) setGroup(actors ...string) {
	p.group = nil
	for _, a := range actors {
		if a != "" && !slices.Contains(p.group, a) {
			p.group = append(p.group, a)
		}
	}
}

func randomID() []byte {
	b := make([]byte, 16)
	rand.Read(b)
	return []byte(hex.EncodeToString(b))
}

// extension is an extension as scripts write it.
type extension struct {
	Type uint32 `json:"extension_type"`
	Data []byte `json:"extension_data"`
}

func toPB(exts []extension) []*pb.Extension {
	out := make([]*pb.Extension, len(exts))
	for i, e := range exts {
		out[i] = &pb.Extension{ExtensionType: e.Type, ExtensionData: e.Data}
	}
	return out
}

// description is a proposal described by value.
type description struct {
	ProposalType      string      `json:"proposalType"`
	KeyPackage        int         `json:"keyPackage"`
	Removed           string      `json:"removed"`
	PSKID             int         `json:"pskID"`
	EpochID           uint64      `json:"epochID"`
	Extensions        []extension `json:"extensions"`
	ChangeGroupID     bool        `json:"changeGroupID"`
	ChangeCipherSuite bool        `json:"changeCipherSuite"`
}

func (p *player) describe(d description) (*pb.ProposalDescription, error) {
	out := &pb.ProposalDescription{ProposalType: []byte(d.ProposalType)}
	var err error
	switch d.ProposalType {
	case "add":
		out.KeyPackage, err = p.output(d.KeyPackage, "key_package")
	case "remove":
		out.RemovedId = []byte(d.Removed)
	case "externalPSK":
		out.PskId, err = p.output(d.PSKID, "psk_id")
	case "resumptionPSK":
		out.EpochId = d.EpochID
	case "groupContextExtensions":
		out.Extensions = toPB(d.Extensions)
	case "reinit":
		out.Extensions = toPB(d.Extensions)
		if d.ChangeCipherSuite {
			if err := p.changeSuite(); err != nil {
				return nil, err
			}
		}
		out.CipherSuite = p.suite
		out.GroupId, err = p.newGroupID(d.ChangeGroupID)
	default:
		err = fmt.Errorf("unknown proposal type %q", d.ProposalType)
	}
	return out, err
}

// newGroupID is the group id for a ReInit: the script's group's, changed
// if asked.
func (p *player) newGroupID(change bool) ([]byte, error) {
	id, err := p.output(0, "group_id")
	if err != nil {
		return nil, err
	}
	if change {
		id = append(bytes.Clone(id), "++"...)
	}
	return id, nil
}

// changeSuite switches to the next cipher suite every client supports.
func (p *player) changeSuite() error {
	var common []uint32
	for _, cs := range p.run.Clients[0].Supported {
		if cs == p.suite {
			continue
		}
		if !slices.ContainsFunc(p.run.Clients, func(c *Client) bool { return slices.Contains(c.Supported, cs) }) {
			continue
		}
		common = append(common, cs)
	}
	if len(common) == 0 {
		return fmt.Errorf("no other cipher suite is supported by every client")
	}
	slices.Sort(common)
	next := common[0]
	for _, cs := range common {
		if cs > p.suite {
			next = cs
			break
		}
	}
	p.suite = next
	return nil
}

// action performs step i of a script, st.
type action func(p *player, ctx context.Context, i int, st Step) error

// actions are the steps a script can take, by name.
var actions = map[string]action{
	"createGroup":                    withParams((*player).createGroup),
	"createKeyPackage":               (*player).createKeyPackage,
	"joinGroup":                      withParams((*player).joinGroup),
	"externalJoin":                   withParams((*player).externalJoin),
	"installExternalPSK":             withParams((*player).installExternalPSK),
	"groupInfo":                      withParams((*player).groupInfo),
	"addProposal":                    withParams((*player).propose),
	"updateProposal":                 withParams((*player).propose),
	"removeProposal":                 withParams((*player).propose),
	"externalPSKProposal":            withParams((*player).propose),
	"resumptionPSKProposal":          withParams((*player).propose),
	"groupContextExtensionsProposal": withParams((*player).propose),
	"fullCommit":                     withParams((*player).fullCommit),
	"commit":                         withParams((*player).commit),
	"handleCommit":                   withParams((*player).handleCommit),
	"handlePendingCommit":            (*player).handlePendingCommit,
	"protect":                        withParams((*player).protect),
	"unprotect":                      withParams((*player).unprotect),
	"reinit":                         withParams((*player).reinit),
	"branch":                         withParams((*player).branch),
	"newMemberAddProposal":           withParams((*player).newMemberAddProposal),
	"addExternalSigner":              withParams((*player).addExternalSigner),
	"externalSignerProposal":         withParams((*player).externalSignerProposal),
}

// step performs step i.
func (p *player) step(ctx context.Context, i int, st Step) error {
	act, ok := actions[st.Action]
	if !ok {
		return fmt.Errorf("unknown action %q", st.Action)
	}
	return act(p, ctx, i, st)
}

// withParams is the action of a step method that takes the step's
// parameters decoded as a T.
func withParams[T any](f func(p *player, ctx context.Context, i int, st Step, params T) error) action {
	return func(p *player, ctx context.Context, i int, st Step) error {
		var params T
		if err := json.Unmarshal(st.Raw, &params); err != nil {
			return err
		}
		return f(p, ctx, i, st, params)
	}
}

// treeCheck checks that a ratchet tree came back exactly when asked for.
func treeCheck(asked bool, tree []byte) error {
	if asked != (len(tree) > 0) {
		return fmt.Errorf("ratchet tree returned %t, asked for it %t", len(tree) > 0, asked)
	}
	return nil
}

// createGroupParams are the parameters of the step createGroup.
type createGroupParams struct {
	Members []string `json:"members"`
}

func (p *player) createGroup(ctx context.Context, i int, st Step, params createGroupParams) error {
	groupID := randomID()
	resp, err := callAs(ctx, p, st.Actor, "creates the group", func(ctx context.Context, rpc pb.MLSClientClient) (*pb.CreateGroupResponse, error) {
		return rpc.CreateGroup(ctx, &pb.CreateGroupRequest{
			GroupId: groupID, CipherSuite: p.suite, EncryptHandshake: p.run.EncryptHandshake, Identity: []byte(st.Actor)})
	})
	if err != nil {
		return err
	}
	p.state[st.Actor] = resp.GetStateId()
	p.out[i]["group_id"] = groupID
	p.setGroup(st.Actor)
	if len(params.Members) == 0 {
		return nil
	}
	// Add the members in one commit of Adds by value.
	byValue := make([]*pb.ProposalDescription, len(params.Members))
	for k, m := range params.Members {
		kp, err := p.keyPackage(ctx, m)
		if err != nil {
			return err
		}
		byValue[k] = &pb.ProposalDescription{ProposalType: []byte("add"), KeyPackage: kp}
	}
	return p.commitAndApply(ctx, st.Actor, &pb.CommitRequest{ByValue: byValue}, nil, nil, params.Members)
}

// keyPackage has actor's client make a KeyPackage and remembers the
// transaction.
func (p *player) keyPackage(ctx context.Context, actor string) ([]byte, error) {
	resp, err := callAs(ctx, p, actor, "makes a KeyPackage", func(ctx context.Context, rpc pb.MLSClientClient) (*pb.CreateKeyPackageResponse, error) {
		return rpc.CreateKeyPackage(ctx, &pb.CreateKeyPackageRequest{CipherSuite: p.suite, Identity: []byte(actor)})
	})
	if err != nil {
		return nil, err
	}
	p.transaction[actor] = resp.GetTransactionId()
	return resp.GetKeyPackage(), nil
}

func (p *player) createKeyPackage(ctx context.Context, i int, st Step) error {
	kp, err := p.keyPackage(ctx, st.Actor)
	if err != nil {
		return err
	}
	p.out[i]["key_package"] = kp
	return nil
}

// joinGroupParams are the parameters of the step joinGroup.
type joinGroupParams struct {
	Welcome int `json:"welcome"`
}

func (p *player) joinGroup(ctx context.Context, _ int, st Step, params joinGroupParams) error {
	welcome, err := p.output(params.Welcome, "welcome")
	if err != nil {
		return err
	}
	tree, _ := p.output(params.Welcome, "ratchet_tree")
	_, err = p.join(ctx, st.Actor, welcome, tree)
	return err
}

// join has actor join from a Welcome with its last KeyPackage.
func (p *player) join(ctx context.Context, actor string, welcome, tree []byte) ([]byte, error) {
	if _, err := p.client(actor); err != nil {
		return nil, err
	}
	tx, ok := p.transaction[actor]
	if !ok {
		return nil, fmt.Errorf("%s has no KeyPackage", actor)
	}
	resp, err := callAs(ctx, p, actor, "joins", func(ctx context.Context, rpc pb.MLSClientClient) (*pb.JoinGroupResponse, error) {
		return rpc.JoinGroup(ctx, &pb.JoinGroupRequest{TransactionId: tx, Welcome: welcome,
			EncryptHandshake: p.run.EncryptHandshake, Identity: []byte(actor), RatchetTree: tree})
	})
	if err != nil {
		return nil, err
	}
	delete(p.transaction, actor)
	p.state[actor] = resp.GetStateId()
	return resp.GetEpochAuthenticator(), nil
}

// externalJoinParams are the parameters of the step externalJoin.
type externalJoinParams struct {
	Joiner       string   `json:"joiner"`
	Members      []string `json:"members"`
	ExternalTree bool     `json:"externalTree"`
	RemovePrior  bool     `json:"removePrior"`
	PSKs         []int    `json:"psks"`
}

func (p *player) externalJoin(ctx context.Context, i int, st Step, params externalJoinParams) error {
	gi, tree, err := p.fetchGroupInfo(ctx, st.Actor, params.ExternalTree)
	if err != nil {
		return err
	}
	p.out[i]["group_info"], p.out[i]["ratchet_tree"] = gi, tree
	req := &pb.ExternalJoinRequest{GroupInfo: gi, RatchetTree: tree, EncryptHandshake: p.run.EncryptHandshake,
		Identity: []byte(params.Joiner), RemovePrior: params.RemovePrior}
	for _, k := range params.PSKs {
		id, err := p.output(k, "psk_id")
		if err != nil {
			return err
		}
		secret, err := p.output(k, "psk_secret")
		if err != nil {
			return err
		}
		req.Psks = append(req.Psks, &pb.PreSharedKey{PskId: id, PskSecret: secret})
	}
	resp, err := callAs(ctx, p, params.Joiner, "joins externally", func(ctx context.Context, rpc pb.MLSClientClient) (*pb.ExternalJoinResponse, error) {
		return rpc.ExternalJoin(ctx, req)
	})
	if err != nil {
		return err
	}
	p.state[params.Joiner] = resp.GetStateId()
	p.out[i]["commit"] = resp.GetCommit()
	members := append(slices.Clone(params.Members), st.Actor)
	for _, m := range members {
		auth, err := p.handle(ctx, m, resp.GetCommit(), nil)
		if err != nil {
			return err
		}
		if !bytes.Equal(auth, resp.GetEpochAuthenticator()) {
			return fmt.Errorf("%s and the external joiner %s disagree on the epoch authenticator", m, params.Joiner)
		}
	}
	p.setGroup(append(members, params.Joiner)...)
	return p.checkSecrets(ctx, p.group)
}

func (p *player) fetchGroupInfo(ctx context.Context, actor string, externalTree bool) (gi, tree []byte, err error) {
	resp, err := callOnState(ctx, p, actor, "gives the GroupInfo", func(ctx context.Context, rpc pb.MLSClientClient, id uint32) (*pb.GroupInfoResponse, error) {
		return rpc.GroupInfo(ctx, &pb.GroupInfoRequest{StateId: id, ExternalTree: externalTree})
	})
	if err != nil {
		return nil, nil, err
	}
	if err := treeCheck(externalTree, resp.GetRatchetTree()); err != nil {
		return nil, nil, err
	}
	return resp.GetGroupInfo(), resp.GetRatchetTree(), nil
}

// groupInfoParams are the parameters of the step groupInfo.
type groupInfoParams struct {
	ExternalTree bool `json:"externalTree"`
}

func (p *player) groupInfo(ctx context.Context, i int, st Step, params groupInfoParams) error {
	gi, tree, err := p.fetchGroupInfo(ctx, st.Actor, params.ExternalTree)
	if err != nil {
		return err
	}
	p.out[i]["group_info"], p.out[i]["ratchet_tree"] = gi, tree
	return nil
}

// installExternalPSKParams are the parameters of the step installExternalPSK.
type installExternalPSKParams struct {
	Clients []string `json:"clients"`
}

func (p *player) installExternalPSK(ctx context.Context, i int, st Step, params installExternalPSKParams) error {
	id, secret := make([]byte, 32), make([]byte, 32)
	rand.Read(id)
	rand.Read(secret)
	p.out[i]["psk_id"], p.out[i]["psk_secret"] = id, secret
	for _, a := range params.Clients {
		if _, err := p.client(a); err != nil {
			return err
		}
		h, ok := p.state[a]
		if !ok {
			if h, ok = p.transaction[a]; !ok {
				return fmt.Errorf("%s has neither a state nor a transaction", a)
			}
		}
		_, err := callAs(ctx, p, a, "stores the PSK", func(ctx context.Context, rpc pb.MLSClientClient) (*pb.StorePSKResponse, error) {
			return rpc.StorePSK(ctx, &pb.StorePSKRequest{StateOrTransactionId: h, PskId: id, PskSecret: secret})
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// proposeParams are the parameters of the step propose.
type proposeParams struct {
	KeyPackage int         `json:"keyPackage"`
	Removed    string      `json:"removed"`
	PSKID      int         `json:"pskID"`
	EpochID    uint64      `json:"epochID"`
	Extensions []extension `json:"extensions"`
}

func (p *player) propose(ctx context.Context, i int, st Step, params proposeParams) error {
	var kp, pskID []byte
	var err error
	switch st.Action {
	case "addProposal":
		kp, err = p.output(params.KeyPackage, "key_package")
	case "externalPSKProposal":
		pskID, err = p.output(params.PSKID, "psk_id")
	}
	if err != nil {
		return err
	}
	resp, err := callOnState(ctx, p, st.Actor, "makes an "+st.Action, func(ctx context.Context, rpc pb.MLSClientClient, id uint32) (*pb.ProposalResponse, error) {
		switch st.Action {
		case "addProposal":
			return rpc.AddProposal(ctx, &pb.AddProposalRequest{StateId: id, KeyPackage: kp})
		case "updateProposal":
			return rpc.UpdateProposal(ctx, &pb.UpdateProposalRequest{StateId: id})
		case "removeProposal":
			return rpc.RemoveProposal(ctx, &pb.RemoveProposalRequest{StateId: id, RemovedId: []byte(params.Removed)})
		case "externalPSKProposal":
			return rpc.ExternalPSKProposal(ctx, &pb.ExternalPSKProposalRequest{StateId: id, PskId: pskID})
		case "resumptionPSKProposal":
			return rpc.ResumptionPSKProposal(ctx, &pb.ResumptionPSKProposalRequest{StateId: id, EpochId: params.EpochID})
		case "groupContextExtensionsProposal":
			return rpc.GroupContextExtensionsProposal(ctx, &pb.GroupContextExtensionsProposalRequest{StateId: id, Extensions: toPB(params.Extensions)})
		}
		return nil, fmt.Errorf("unknown proposal action %q", st.Action)
	})
	if err != nil {
		return err
	}
	p.out[i]["proposal"] = resp.GetProposal()
	return nil
}

// commitParams are the parameters of commit and fullCommit.
type commitParams struct {
	ByReference  []int         `json:"byReference"`
	ByValue      []description `json:"byValue"`
	Members      []string      `json:"members"`
	Joiners      []string      `json:"joiners"`
	ForcePath    bool          `json:"force_path"`
	ExternalTree bool          `json:"external_tree"`
}

// commit sends a Commit (step "commit" or the first half of "fullCommit")
// and records its outputs.
func (p *player) commit(ctx context.Context, i int, st Step, params commitParams) error {
	req, _, err := p.commitRequest(&params)
	if err != nil {
		return err
	}
	resp, err := p.sendCommit(ctx, st.Actor, req)
	if err != nil {
		return err
	}
	p.out[i]["commit"], p.out[i]["welcome"] = resp.GetCommit(), resp.GetWelcome()
	if params.ExternalTree {
		p.out[i]["ratchet_tree"] = resp.GetRatchetTree()
	}
	return nil
}

func (p *player) commitRequest(params *commitParams) (*pb.CommitRequest, [][]byte, error) {
	byRef, err := p.outputs(params.ByReference, "proposal")
	if err != nil {
		return nil, nil, err
	}
	req := &pb.CommitRequest{ByReference: byRef, ForcePath: params.ForcePath, ExternalTree: params.ExternalTree}
	for _, d := range params.ByValue {
		pd, err := p.describe(d)
		if err != nil {
			return nil, nil, err
		}
		req.ByValue = append(req.ByValue, pd)
	}
	return req, byRef, nil
}

func (p *player) sendCommit(ctx context.Context, actor string, req *pb.CommitRequest) (*pb.CommitResponse, error) {
	resp, err := callOnState(ctx, p, actor, "commits", func(ctx context.Context, rpc pb.MLSClientClient, id uint32) (*pb.CommitResponse, error) {
		req.StateId = id
		return rpc.Commit(ctx, req)
	})
	if err != nil {
		return nil, err
	}
	return resp, treeCheck(req.ExternalTree, resp.GetRatchetTree())
}

// fullCommit commits, applies the commit at the committer and the members,
// and has the joiners join; all must agree.
func (p *player) fullCommit(ctx context.Context, i int, st Step, params commitParams) error {
	req, byRef, err := p.commitRequest(&params)
	if err != nil {
		return err
	}
	return p.commitAndApply(ctx, st.Actor, req, byRef, params.Members, params.Joiners)
}

func (p *player) commitAndApply(ctx context.Context, actor string, req *pb.CommitRequest, byRef [][]byte, members, joiners []string) error {
	resp, err := p.sendCommit(ctx, actor, req)
	if err != nil {
		return err
	}
	auth, err := p.handlePending(ctx, actor)
	if err != nil {
		return err
	}
	for _, m := range members {
		got, err := p.handle(ctx, m, resp.GetCommit(), byRef)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, auth) {
			return fmt.Errorf("%s and the committer %s disagree on the epoch authenticator", m, actor)
		}
	}
	if len(joiners) > 0 && len(resp.GetWelcome()) == 0 {
		return fmt.Errorf("a commit adding %v has no Welcome", joiners)
	}
	for _, j := range joiners {
		got, err := p.join(ctx, j, resp.GetWelcome(), resp.GetRatchetTree())
		if err != nil {
			return err
		}
		if !bytes.Equal(got, auth) {
			return fmt.Errorf("the joiner %s and the committer %s disagree on the epoch authenticator", j, actor)
		}
	}
	p.setGroup(append(append([]string{actor}, members...), joiners...)...)
	return p.checkSecrets(ctx, p.group)
}

// handle has actor process a commit and the proposals it includes by
// reference, and returns the new epoch authenticator.
func (p *player) handle(ctx context.Context, actor string, commit []byte, byRef [][]byte) ([]byte, error) {
	resp, err := callOnState(ctx, p, actor, "handles the commit", func(ctx context.Context, rpc pb.MLSClientClient, id uint32) (*pb.HandleCommitResponse, error) {
		return rpc.HandleCommit(ctx, &pb.HandleCommitRequest{StateId: id, Proposal: byRef, Commit: commit})
	})
	if err != nil {
		return nil, err
	}
	p.state[actor] = resp.GetStateId()
	return resp.GetEpochAuthenticator(), nil
}

// handlePending has actor apply the commit it sent, and returns the new
// epoch authenticator.
func (p *player) handlePending(ctx context.Context, actor string) ([]byte, error) {
	resp, err := callOnState(ctx, p, actor, "applies its commit", func(ctx context.Context, rpc pb.MLSClientClient, id uint32) (*pb.HandleCommitResponse, error) {
		return rpc.HandlePendingCommit(ctx, &pb.HandlePendingCommitRequest{StateId: id})
	})
	if err != nil {
		return nil, err
	}
	p.state[actor] = resp.GetStateId()
	return resp.GetEpochAuthenticator(), nil
}

func (p *player) handlePendingCommit(ctx context.Context, _ int, st Step) error {
	_, err := p.handlePending(ctx, st.Actor)
	return err
}

// handleCommitParams are the parameters of the step handleCommit.
type handleCommitParams struct {
	Commit      int   `json:"commit"`
	ByReference []int `json:"byReference"`
}

func (p *player) handleCommit(ctx context.Context, _ int, st Step, params handleCommitParams) error {
	commit, err := p.output(params.Commit, "commit")
	if err != nil {
		return err
	}
	byRef, err := p.outputs(params.ByReference, "proposal")
	if err != nil {
		return err
	}
	_, err = p.handle(ctx, st.Actor, commit, byRef)
	return err
}

// protectParams are the parameters of the step protect.
type protectParams struct {
	AuthenticatedData string `json:"authenticatedData"`
	Plaintext         string `json:"plaintext"`
}

func (p *player) protect(ctx context.Context, i int, st Step, params protectParams) error {
	ct, err := p.protectAs(ctx, st.Actor, []byte(params.AuthenticatedData), []byte(params.Plaintext))
	if err != nil {
		return err
	}
	p.out[i]["authenticated_data"] = []byte(params.AuthenticatedData)
	p.out[i]["plaintext"] = []byte(params.Plaintext)
	p.out[i]["ciphertext"] = ct
	return nil
}

func (p *player) protectAs(ctx context.Context, actor string, aad, pt []byte) ([]byte, error) {
	resp, err := callOnState(ctx, p, actor, "protects", func(ctx context.Context, rpc pb.MLSClientClient, id uint32) (*pb.ProtectResponse, error) {
		return rpc.Protect(ctx, &pb.ProtectRequest{StateId: id, AuthenticatedData: aad, Plaintext: pt})
	})
	if err != nil {
		return nil, err
	}
	if bytes.Contains(resp.GetCiphertext(), pt) && len(pt) > 0 {
		return nil, fmt.Errorf("%s's ciphertext contains the plaintext", actor)
	}
	return resp.GetCiphertext(), nil
}

// unprotectParams are the parameters of the step unprotect.
type unprotectParams struct {
	Ciphertext int `json:"ciphertext"`
}

func (p *player) unprotect(ctx context.Context, _ int, st Step, params unprotectParams) error {
	ct, err := p.output(params.Ciphertext, "ciphertext")
	if err != nil {
		return err
	}
	aad, _ := p.output(params.Ciphertext, "authenticated_data")
	pt, _ := p.output(params.Ciphertext, "plaintext")
	return p.unprotectAs(ctx, st.Actor, ct, aad, pt)
}

// unprotectAs has actor decrypt ct and checks it yields aad and pt.
func (p *player) unprotectAs(ctx context.Context, actor string, ct, aad, pt []byte) error {
	resp, err := callOnState(ctx, p, actor, "unprotects", func(ctx context.Context, rpc pb.MLSClientClient, id uint32) (*pb.UnprotectResponse, error) {
		return rpc.Unprotect(ctx, &pb.UnprotectRequest{StateId: id, Ciphertext: ct})
	})
	if err != nil {
		return err
	}
	if !bytes.Equal(resp.GetAuthenticatedData(), aad) || !bytes.Equal(resp.GetPlaintext(), pt) {
		return fmt.Errorf("%s unprotects something else than was protected", actor)
	}
	return nil
}

// reinit re-initialises the group: a proposal (by a member or an external
// sender), a commit, a KeyPackage from each member in the new cipher
// suite, and a Welcome into the new group from the welcomer.
// reinitParams are the parameters of the step reinit.
type reinitParams struct {
	Proposer          string      `json:"proposer"`
	Committer         string      `json:"committer"`
	Welcomer          string      `json:"welcomer"`
	Members           []string    `json:"members"`
	ChangeCipherSuite bool        `json:"changeCiphersuite"`
	ChangeGroupID     bool        `json:"changeGroupID"`
	Extensions        []extension `json:"extensions"`
	ForcePath         bool        `json:"forcePath"`
	ExternalTree      bool        `json:"externalTree"`
	ExternalProposal  int         `json:"externalReinitProposal"`
}

func (p *player) reinit(ctx context.Context, _ int, st Step, params reinitParams) error {
	everyone := []string{params.Committer, params.Welcomer}
	if params.Proposer != "" {
		everyone = append(everyone, params.Proposer)
	}
	everyone = append(everyone, params.Members...)
	p.setGroup(everyone...)
	everyone = p.group

	var proposal []byte
	if params.Proposer != "" {
		groupID, err := p.newGroupID(params.ChangeGroupID)
		if err != nil {
			return err
		}
		if params.ChangeCipherSuite {
			if err := p.changeSuite(); err != nil {
				return err
			}
		}
		resp, err := callOnState(ctx, p, params.Proposer, "proposes a ReInit", func(ctx context.Context, rpc pb.MLSClientClient, id uint32) (*pb.ProposalResponse, error) {
			return rpc.ReInitProposal(ctx, &pb.ReInitProposalRequest{StateId: id, CipherSuite: p.suite, GroupId: groupID, Extensions: toPB(params.Extensions)})
		})
		if err != nil {
			return err
		}
		proposal = resp.GetProposal()
	} else {
		var err error
		if proposal, err = p.output(params.ExternalProposal, "proposal"); err != nil {
			return err
		}
	}

	reinitIDs, keyPackages := map[string]uint32{}, map[string][]byte{}
	commit, err := callOnState(ctx, p, params.Committer, "commits the ReInit", func(ctx context.Context, rpc pb.MLSClientClient, id uint32) (*pb.CommitResponse, error) {
		return rpc.ReInitCommit(ctx, &pb.CommitRequest{StateId: id, ByReference: [][]byte{proposal}})
	})
	if err != nil {
		return err
	}
	pending, err := callOnState(ctx, p, params.Committer, "applies the ReInit commit", func(ctx context.Context, rpc pb.MLSClientClient, id uint32) (*pb.HandleReInitCommitResponse, error) {
		return rpc.HandlePendingReInitCommit(ctx, &pb.HandlePendingCommitRequest{StateId: id})
	})
	if err != nil {
		return err
	}
	reinitIDs[params.Committer], keyPackages[params.Committer] = pending.GetReinitId(), pending.GetKeyPackage()
	for _, m := range everyone {
		if m == params.Committer {
			continue
		}
		resp, err := callOnState(ctx, p, m, "handles the ReInit commit", func(ctx context.Context, rpc pb.MLSClientClient, id uint32) (*pb.HandleReInitCommitResponse, error) {
			return rpc.HandleReInitCommit(ctx, &pb.HandleCommitRequest{StateId: id, Proposal: [][]byte{proposal}, Commit: commit.GetCommit()})
		})
		if err != nil {
			return err
		}
		if !bytes.Equal(resp.GetEpochAuthenticator(), pending.GetEpochAuthenticator()) {
			return fmt.Errorf("%s and the committer disagree on the last epoch authenticator", m)
		}
		reinitIDs[m], keyPackages[m] = resp.GetReinitId(), resp.GetKeyPackage()
	}

	var kps [][]byte
	for _, m := range everyone {
		if m != params.Welcomer {
			kps = append(kps, keyPackages[m])
		}
	}
	welcome, err := callAs(ctx, p, params.Welcomer, "welcomes into the new group", func(ctx context.Context, rpc pb.MLSClientClient) (*pb.CreateSubgroupResponse, error) {
		return rpc.ReInitWelcome(ctx, &pb.ReInitWelcomeRequest{ReinitId: reinitIDs[params.Welcomer], KeyPackage: kps,
			ForcePath: params.ForcePath, ExternalTree: params.ExternalTree})
	})
	if err != nil {
		return err
	}
	p.state[params.Welcomer] = welcome.GetStateId()
	for _, m := range everyone {
		if m == params.Welcomer {
			continue
		}
		resp, err := callAs(ctx, p, m, "joins the new group", func(ctx context.Context, rpc pb.MLSClientClient) (*pb.JoinGroupResponse, error) {
			return rpc.HandleReInitWelcome(ctx, &pb.HandleReInitWelcomeRequest{ReinitId: reinitIDs[m], Welcome: welcome.GetWelcome(), RatchetTree: welcome.GetRatchetTree()})
		})
		if err != nil {
			return err
		}
		if !bytes.Equal(resp.GetEpochAuthenticator(), welcome.GetEpochAuthenticator()) {
			return fmt.Errorf("%s and the welcomer disagree on the new group's epoch authenticator", m)
		}
		p.state[m] = resp.GetStateId()
	}
	return p.checkSecrets(ctx, everyone)
}

// branch has the actor found a new group with some members, who join it
// with fresh KeyPackages.
// branchParams are the parameters of the step branch.
type branchParams struct {
	Members      []string    `json:"members"`
	Extensions   []extension `json:"extensions"`
	ForcePath    bool        `json:"forcePath"`
	ExternalTree bool        `json:"externalTree"`
}

func (p *player) branch(ctx context.Context, _ int, st Step, params branchParams) error {
	kps := make([][]byte, len(params.Members))
	txs := make([]uint32, len(params.Members))
	for k, m := range params.Members {
		kp, err := p.keyPackage(ctx, m)
		if err != nil {
			return err
		}
		kps[k], txs[k] = kp, p.transaction[m]
		delete(p.transaction, m)
	}
	resp, err := callOnState(ctx, p, st.Actor, "branches", func(ctx context.Context, rpc pb.MLSClientClient, id uint32) (*pb.CreateSubgroupResponse, error) {
		return rpc.CreateBranch(ctx, &pb.CreateBranchRequest{StateId: id, GroupId: randomID(), Extensions: toPB(params.Extensions),
			KeyPackages: kps, ForcePath: params.ForcePath, ExternalTree: params.ExternalTree})
	})
	if err != nil {
		return err
	}
	if err := treeCheck(params.ExternalTree, resp.GetRatchetTree()); err != nil {
		return err
	}
	states := map[string]uint32{st.Actor: resp.GetStateId()}
	for k, m := range params.Members {
		hr, err := callOnState(ctx, p, m, "joins the branch", func(ctx context.Context, rpc pb.MLSClientClient, id uint32) (*pb.HandleBranchResponse, error) {
			return rpc.HandleBranch(ctx, &pb.HandleBranchRequest{StateId: id, TransactionId: txs[k], Welcome: resp.GetWelcome(), RatchetTree: resp.GetRatchetTree()})
		})
		if err != nil {
			return err
		}
		if !bytes.Equal(hr.GetEpochAuthenticator(), resp.GetEpochAuthenticator()) {
			return fmt.Errorf("%s and %s disagree on the branch's epoch authenticator", m, st.Actor)
		}
		states[m] = hr.GetStateId()
	}
	// The old group goes on: its members still agree before moving on.
	old := append([]string{st.Actor}, params.Members...)
	if err := p.checkSecrets(ctx, old); err != nil {
		return fmt.Errorf("old group after branching: %w", err)
	}
	for a, s := range states {
		p.state[a] = s
	}
	p.setGroup(old...)
	return p.checkSecrets(ctx, old)
}

// newMemberAddProposalParams are the parameters of the step newMemberAddProposal.
type newMemberAddProposalParams struct {
	Joiner string `json:"joiner"`
}

func (p *player) newMemberAddProposal(ctx context.Context, i int, st Step, params newMemberAddProposalParams) error {
	gi, _, err := p.fetchGroupInfo(ctx, st.Actor, false)
	if err != nil {
		return err
	}
	resp, err := callAs(ctx, p, params.Joiner, "proposes to join", func(ctx context.Context, rpc pb.MLSClientClient) (*pb.NewMemberAddProposalResponse, error) {
		return rpc.NewMemberAddProposal(ctx, &pb.NewMemberAddProposalRequest{GroupInfo: gi, Identity: []byte(params.Joiner)})
	})
	if err != nil {
		return err
	}
	p.transaction[params.Joiner] = resp.GetTransactionId()
	p.out[i]["proposal"] = resp.GetProposal()
	return nil
}

// addExternalSignerParams are the parameters of the step addExternalSigner.
type addExternalSignerParams struct {
	Signer string `json:"signer"`
}

func (p *player) addExternalSigner(ctx context.Context, i int, st Step, params addExternalSignerParams) error {
	signer, err := callAs(ctx, p, params.Signer, "becomes an external signer", func(ctx context.Context, rpc pb.MLSClientClient) (*pb.CreateExternalSignerResponse, error) {
		return rpc.CreateExternalSigner(ctx, &pb.CreateExternalSignerRequest{CipherSuite: p.suite, Identity: []byte(params.Signer)})
	})
	if err != nil {
		return err
	}
	p.signer[params.Signer] = signer.GetSignerId()
	resp, err := callOnState(ctx, p, st.Actor, "adds the external signer "+params.Signer, func(ctx context.Context, rpc pb.MLSClientClient, id uint32) (*pb.ProposalResponse, error) {
		return rpc.AddExternalSigner(ctx, &pb.AddExternalSignerRequest{StateId: id, ExternalSender: signer.GetExternalSender()})
	})
	if err != nil {
		return err
	}
	p.out[i]["proposal"] = resp.GetProposal()
	return nil
}

// externalSignerProposalParams are the parameters of the step externalSignerProposal.
type externalSignerProposalParams struct {
	Member      string      `json:"member"`
	Description description `json:"description"`
}

func (p *player) externalSignerProposal(ctx context.Context, i int, st Step, params externalSignerProposalParams) error {
	gi, tree, err := p.fetchGroupInfo(ctx, params.Member, true)
	if err != nil {
		return err
	}
	d, err := p.describe(params.Description)
	if err != nil {
		return err
	}
	if _, err := p.client(st.Actor); err != nil {
		return err
	}
	signer, ok := p.signer[st.Actor]
	if !ok {
		return fmt.Errorf("%s is no external signer", st.Actor)
	}
	resp, err := callAs(ctx, p, st.Actor, "proposes", func(ctx context.Context, rpc pb.MLSClientClient) (*pb.ProposalResponse, error) {
		return rpc.ExternalSignerProposal(ctx, &pb.ExternalSignerProposalRequest{SignerId: signer, GroupInfo: gi, RatchetTree: tree, Description: d})
	})
	if err != nil {
		return err
	}
	p.out[i]["proposal"] = resp.GetProposal()
	return nil
}

// exportLabel, exportContext and exportLength are what checkSecrets
// exports.
const (
	exportLabel   = "hush interop"
	exportContext = "check"
	exportLength  = 32
)

// checkSecrets checks that actors share the state authentication secret
// and an exported secret.
func (p *player) checkSecrets(ctx context.Context, actors []string) error {
	var auth, exported []byte
	for k, a := range actors {
		sa, err := callOnState(ctx, p, a, "gives the state auth", func(ctx context.Context, rpc pb.MLSClientClient, id uint32) (*pb.StateAuthResponse, error) {
			return rpc.StateAuth(ctx, &pb.StateAuthRequest{StateId: id})
		})
		if err != nil {
			return err
		}
		ex, err := callOnState(ctx, p, a, "exports", func(ctx context.Context, rpc pb.MLSClientClient, id uint32) (*pb.ExportResponse, error) {
			return rpc.Export(ctx, &pb.ExportRequest{StateId: id, Label: exportLabel, Context: []byte(exportContext), KeyLength: exportLength})
		})
		if err != nil {
			return err
		}
		if len(ex.GetExportedSecret()) != exportLength {
			return fmt.Errorf("%s exported %d bytes, want %d", a, len(ex.GetExportedSecret()), exportLength)
		}
		if k == 0 {
			auth, exported = sa.GetStateAuthSecret(), ex.GetExportedSecret()
			continue
		}
		if !bytes.Equal(sa.GetStateAuthSecret(), auth) || !bytes.Equal(ex.GetExportedSecret(), exported) {
			return fmt.Errorf("%s and %s do not share the group's secrets", a, actors[0])
		}
	}
	return nil
}

// verifyGroup is "verify group state" of the harness's scenarios: the
// members share the group's secrets, and a message from each decrypts at
// every other.
func (p *player) verifyGroup(ctx context.Context) error {
	if err := p.checkSecrets(ctx, p.group); err != nil {
		return err
	}
	for _, from := range p.group {
		aad, pt := []byte("from "+from), []byte("verify group state: hello from "+from)
		ct, err := p.protectAs(ctx, from, aad, pt)
		if err != nil {
			return err
		}
		for _, to := range p.group {
			if to == from {
				continue
			}
			if err := p.unprotectAs(ctx, to, ct, aad, pt); err != nil {
				return err
			}
		}
	}
	return nil
}
