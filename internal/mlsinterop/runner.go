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

func (p *player) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, p.run.Timeout)
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

// step performs step i.
func (p *player) step(ctx context.Context, i int, st Step) error {
	switch st.Action {
	case "createGroup":
		return p.createGroup(ctx, i, st)
	case "createKeyPackage":
		return p.createKeyPackage(ctx, i, st)
	case "joinGroup":
		return p.joinGroup(ctx, st)
	case "externalJoin":
		return p.externalJoin(ctx, i, st)
	case "installExternalPSK":
		return p.installExternalPSK(ctx, i, st)
	case "groupInfo":
		return p.groupInfo(ctx, i, st)
	case "addProposal", "updateProposal", "removeProposal", "externalPSKProposal",
		"resumptionPSKProposal", "groupContextExtensionsProposal":
		return p.propose(ctx, i, st)
	case "fullCommit":
		return p.fullCommit(ctx, i, st)
	case "commit":
		return p.commit(ctx, i, st)
	case "handleCommit":
		return p.handleCommit(ctx, st)
	case "handlePendingCommit":
		_, err := p.handlePending(ctx, st.Actor)
		return err
	case "protect":
		return p.protect(ctx, i, st)
	case "unprotect":
		return p.unprotect(ctx, i, st)
	case "reinit":
		return p.reinit(ctx, st)
	case "branch":
		return p.branch(ctx, st)
	case "newMemberAddProposal":
		return p.newMemberAddProposal(ctx, i, st)
	case "addExternalSigner":
		return p.addExternalSigner(ctx, i, st)
	case "externalSignerProposal":
		return p.externalSignerProposal(ctx, i, st)
	}
	return fmt.Errorf("unknown action %q", st.Action)
}

func (p *player) createGroup(ctx context.Context, i int, st Step) error {
	var params struct {
		Members []string `json:"members"`
	}
	if err := json.Unmarshal(st.Raw, &params); err != nil {
		return err
	}
	c, err := p.client(st.Actor)
	if err != nil {
		return err
	}
	groupID := randomID()
	cctx, cancel := p.call(ctx)
	defer cancel()
	resp, err := c.RPC.CreateGroup(cctx, &pb.CreateGroupRequest{
		GroupId: groupID, CipherSuite: p.suite, EncryptHandshake: p.run.EncryptHandshake, Identity: []byte(st.Actor)})
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
	c, err := p.client(actor)
	if err != nil {
		return nil, err
	}
	cctx, cancel := p.call(ctx)
	defer cancel()
	resp, err := c.RPC.CreateKeyPackage(cctx, &pb.CreateKeyPackageRequest{CipherSuite: p.suite, Identity: []byte(actor)})
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

func (p *player) joinGroup(ctx context.Context, st Step) error {
	var params struct {
		Welcome int `json:"welcome"`
	}
	if err := json.Unmarshal(st.Raw, &params); err != nil {
		return err
	}
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
	c, err := p.client(actor)
	if err != nil {
		return nil, err
	}
	tx, ok := p.transaction[actor]
	if !ok {
		return nil, fmt.Errorf("%s has no KeyPackage", actor)
	}
	cctx, cancel := p.call(ctx)
	defer cancel()
	resp, err := c.RPC.JoinGroup(cctx, &pb.JoinGroupRequest{TransactionId: tx, Welcome: welcome,
		EncryptHandshake: p.run.EncryptHandshake, Identity: []byte(actor), RatchetTree: tree})
	if err != nil {
		return nil, fmt.Errorf("%s joins: %w", actor, err)
	}
	delete(p.transaction, actor)
	p.state[actor] = resp.GetStateId()
	return resp.GetEpochAuthenticator(), nil
}

func (p *player) externalJoin(ctx context.Context, i int, st Step) error {
	var params struct {
		Joiner       string   `json:"joiner"`
		Members      []string `json:"members"`
		ExternalTree bool     `json:"externalTree"`
		RemovePrior  bool     `json:"removePrior"`
		PSKs         []int    `json:"psks"`
	}
	if err := json.Unmarshal(st.Raw, &params); err != nil {
		return err
	}
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
	c, err := p.client(params.Joiner)
	if err != nil {
		return err
	}
	cctx, cancel := p.call(ctx)
	defer cancel()
	resp, err := c.RPC.ExternalJoin(cctx, req)
	if err != nil {
		return fmt.Errorf("%s joins externally: %w", params.Joiner, err)
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
	c, id, err := p.stateOf(actor)
	if err != nil {
		return nil, nil, err
	}
	cctx, cancel := p.call(ctx)
	defer cancel()
	resp, err := c.RPC.GroupInfo(cctx, &pb.GroupInfoRequest{StateId: id, ExternalTree: externalTree})
	if err != nil {
		return nil, nil, err
	}
	if externalTree != (len(resp.GetRatchetTree()) > 0) {
		return nil, nil, fmt.Errorf("ratchet tree returned %t, asked for it %t", len(resp.GetRatchetTree()) > 0, externalTree)
	}
	return resp.GetGroupInfo(), resp.GetRatchetTree(), nil
}

func (p *player) groupInfo(ctx context.Context, i int, st Step) error {
	var params struct {
		ExternalTree bool `json:"externalTree"`
	}
	if err := json.Unmarshal(st.Raw, &params); err != nil {
		return err
	}
	gi, tree, err := p.fetchGroupInfo(ctx, st.Actor, params.ExternalTree)
	if err != nil {
		return err
	}
	p.out[i]["group_info"], p.out[i]["ratchet_tree"] = gi, tree
	return nil
}

func (p *player) installExternalPSK(ctx context.Context, i int, st Step) error {
	var params struct {
		Clients []string `json:"clients"`
	}
	if err := json.Unmarshal(st.Raw, &params); err != nil {
		return err
	}
	id, secret := make([]byte, 32), make([]byte, 32)
	rand.Read(id)
	rand.Read(secret)
	p.out[i]["psk_id"], p.out[i]["psk_secret"] = id, secret
	for _, a := range params.Clients {
		c, err := p.client(a)
		if err != nil {
			return err
		}
		h, ok := p.state[a]
		if !ok {
			if h, ok = p.transaction[a]; !ok {
				return fmt.Errorf("%s has neither a state nor a transaction", a)
			}
		}
		cctx, cancel := p.call(ctx)
		_, err = c.RPC.StorePSK(cctx, &pb.StorePSKRequest{StateOrTransactionId: h, PskId: id, PskSecret: secret})
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}

func (p *player) propose(ctx context.Context, i int, st Step) error {
	var params struct {
		KeyPackage int         `json:"keyPackage"`
		Removed    string      `json:"removed"`
		PSKID      int         `json:"pskID"`
		EpochID    uint64      `json:"epochID"`
		Extensions []extension `json:"extensions"`
	}
	if err := json.Unmarshal(st.Raw, &params); err != nil {
		return err
	}
	c, id, err := p.stateOf(st.Actor)
	if err != nil {
		return err
	}
	cctx, cancel := p.call(ctx)
	defer cancel()
	var resp *pb.ProposalResponse
	switch st.Action {
	case "addProposal":
		kp, kerr := p.output(params.KeyPackage, "key_package")
		if kerr != nil {
			return kerr
		}
		resp, err = c.RPC.AddProposal(cctx, &pb.AddProposalRequest{StateId: id, KeyPackage: kp})
	case "updateProposal":
		resp, err = c.RPC.UpdateProposal(cctx, &pb.UpdateProposalRequest{StateId: id})
	case "removeProposal":
		resp, err = c.RPC.RemoveProposal(cctx, &pb.RemoveProposalRequest{StateId: id, RemovedId: []byte(params.Removed)})
	case "externalPSKProposal":
		pskID, perr := p.output(params.PSKID, "psk_id")
		if perr != nil {
			return perr
		}
		resp, err = c.RPC.ExternalPSKProposal(cctx, &pb.ExternalPSKProposalRequest{StateId: id, PskId: pskID})
	case "resumptionPSKProposal":
		resp, err = c.RPC.ResumptionPSKProposal(cctx, &pb.ResumptionPSKProposalRequest{StateId: id, EpochId: params.EpochID})
	case "groupContextExtensionsProposal":
		resp, err = c.RPC.GroupContextExtensionsProposal(cctx, &pb.GroupContextExtensionsProposalRequest{StateId: id, Extensions: toPB(params.Extensions)})
	}
	if err != nil {
		return fmt.Errorf("%s: %s: %w", st.Actor, st.Action, err)
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
func (p *player) commit(ctx context.Context, i int, st Step) error {
	var params commitParams
	if err := json.Unmarshal(st.Raw, &params); err != nil {
		return err
	}
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
	c, id, err := p.stateOf(actor)
	if err != nil {
		return nil, err
	}
	req.StateId = id
	cctx, cancel := p.call(ctx)
	defer cancel()
	resp, err := c.RPC.Commit(cctx, req)
	if err != nil {
		return nil, fmt.Errorf("%s commits: %w", actor, err)
	}
	if req.ExternalTree != (len(resp.GetRatchetTree()) > 0) {
		return nil, fmt.Errorf("ratchet tree returned %t, asked for it %t", len(resp.GetRatchetTree()) > 0, req.ExternalTree)
	}
	return resp, nil
}

// fullCommit commits, applies the commit at the committer and the members,
// and has the joiners join; all must agree.
func (p *player) fullCommit(ctx context.Context, i int, st Step) error {
	var params commitParams
	if err := json.Unmarshal(st.Raw, &params); err != nil {
		return err
	}
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
	c, id, err := p.stateOf(actor)
	if err != nil {
		return nil, err
	}
	cctx, cancel := p.call(ctx)
	defer cancel()
	resp, err := c.RPC.HandleCommit(cctx, &pb.HandleCommitRequest{StateId: id, Proposal: byRef, Commit: commit})
	if err != nil {
		return nil, fmt.Errorf("%s handles the commit: %w", actor, err)
	}
	p.state[actor] = resp.GetStateId()
	return resp.GetEpochAuthenticator(), nil
}

func (p *player) handlePending(ctx context.Context, actor string) ([]byte, error) {
	c, id, err := p.stateOf(actor)
	if err != nil {
		return nil, err
	}
	cctx, cancel := p.call(ctx)
	defer cancel()
	resp, err := c.RPC.HandlePendingCommit(cctx, &pb.HandlePendingCommitRequest{StateId: id})
	if err != nil {
		return nil, fmt.Errorf("%s applies its commit: %w", actor, err)
	}
	p.state[actor] = resp.GetStateId()
	return resp.GetEpochAuthenticator(), nil
}

func (p *player) handleCommit(ctx context.Context, st Step) error {
	var params struct {
		Commit      int   `json:"commit"`
		ByReference []int `json:"byReference"`
	}
	if err := json.Unmarshal(st.Raw, &params); err != nil {
		return err
	}
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

func (p *player) protect(ctx context.Context, i int, st Step) error {
	var params struct {
		AuthenticatedData string `json:"authenticatedData"`
		Plaintext         string `json:"plaintext"`
	}
	if err := json.Unmarshal(st.Raw, &params); err != nil {
		return err
	}
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
	c, id, err := p.stateOf(actor)
	if err != nil {
		return nil, err
	}
	cctx, cancel := p.call(ctx)
	defer cancel()
	resp, err := c.RPC.Protect(cctx, &pb.ProtectRequest{StateId: id, AuthenticatedData: aad, Plaintext: pt})
	if err != nil {
		return nil, fmt.Errorf("%s protects: %w", actor, err)
	}
	if bytes.Contains(resp.GetCiphertext(), pt) && len(pt) > 0 {
		return nil, fmt.Errorf("%s's ciphertext contains the plaintext", actor)
	}
	return resp.GetCiphertext(), nil
}

func (p *player) unprotect(ctx context.Context, i int, st Step) error {
	var params struct {
		Ciphertext int `json:"ciphertext"`
	}
	if err := json.Unmarshal(st.Raw, &params); err != nil {
		return err
	}
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
	c, id, err := p.stateOf(actor)
	if err != nil {
		return err
	}
	cctx, cancel := p.call(ctx)
	defer cancel()
	resp, err := c.RPC.Unprotect(cctx, &pb.UnprotectRequest{StateId: id, Ciphertext: ct})
	if err != nil {
		return fmt.Errorf("%s unprotects: %w", actor, err)
	}
	if !bytes.Equal(resp.GetAuthenticatedData(), aad) || !bytes.Equal(resp.GetPlaintext(), pt) {
		return fmt.Errorf("%s unprotects something else than was protected", actor)
	}
	return nil
}

// reinit re-initialises the group: a proposal (by a member or an external
// sender), a commit, a KeyPackage from each member in the new cipher
// suite, and a Welcome into the new group from the welcomer.
func (p *player) reinit(ctx context.Context, st Step) error {
	var params struct {
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
	if err := json.Unmarshal(st.Raw, &params); err != nil {
		return err
	}
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
		c, id, err := p.stateOf(params.Proposer)
		if err != nil {
			return err
		}
		cctx, cancel := p.call(ctx)
		resp, err := c.RPC.ReInitProposal(cctx, &pb.ReInitProposalRequest{StateId: id, CipherSuite: p.suite, GroupId: groupID, Extensions: toPB(params.Extensions)})
		cancel()
		if err != nil {
			return fmt.Errorf("%s proposes a ReInit: %w", params.Proposer, err)
		}
		proposal = resp.GetProposal()
	} else {
		var err error
		if proposal, err = p.output(params.ExternalProposal, "proposal"); err != nil {
			return err
		}
	}

	reinitIDs, keyPackages := map[string]uint32{}, map[string][]byte{}
	c, id, err := p.stateOf(params.Committer)
	if err != nil {
		return err
	}
	cctx, cancel := p.call(ctx)
	defer cancel()
	commit, err := c.RPC.ReInitCommit(cctx, &pb.CommitRequest{StateId: id, ByReference: [][]byte{proposal}})
	if err != nil {
		return fmt.Errorf("%s commits the ReInit: %w", params.Committer, err)
	}
	pending, err := c.RPC.HandlePendingReInitCommit(cctx, &pb.HandlePendingCommitRequest{StateId: id})
	if err != nil {
		return fmt.Errorf("%s applies the ReInit commit: %w", params.Committer, err)
	}
	reinitIDs[params.Committer], keyPackages[params.Committer] = pending.GetReinitId(), pending.GetKeyPackage()
	for _, m := range everyone {
		if m == params.Committer {
			continue
		}
		c, id, err := p.stateOf(m)
		if err != nil {
			return err
		}
		resp, err := c.RPC.HandleReInitCommit(cctx, &pb.HandleCommitRequest{StateId: id, Proposal: [][]byte{proposal}, Commit: commit.GetCommit()})
		if err != nil {
			return fmt.Errorf("%s handles the ReInit commit: %w", m, err)
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
	wc, err := p.client(params.Welcomer)
	if err != nil {
		return err
	}
	welcome, err := wc.RPC.ReInitWelcome(cctx, &pb.ReInitWelcomeRequest{ReinitId: reinitIDs[params.Welcomer], KeyPackage: kps,
		ForcePath: params.ForcePath, ExternalTree: params.ExternalTree})
	if err != nil {
		return fmt.Errorf("%s welcomes into the new group: %w", params.Welcomer, err)
	}
	p.state[params.Welcomer] = welcome.GetStateId()
	for _, m := range everyone {
		if m == params.Welcomer {
			continue
		}
		c, err := p.client(m)
		if err != nil {
			return err
		}
		resp, err := c.RPC.HandleReInitWelcome(cctx, &pb.HandleReInitWelcomeRequest{ReinitId: reinitIDs[m], Welcome: welcome.GetWelcome(), RatchetTree: welcome.GetRatchetTree()})
		if err != nil {
			return fmt.Errorf("%s joins the new group: %w", m, err)
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
func (p *player) branch(ctx context.Context, st Step) error {
	var params struct {
		Members      []string    `json:"members"`
		Extensions   []extension `json:"extensions"`
		ForcePath    bool        `json:"forcePath"`
		ExternalTree bool        `json:"externalTree"`
	}
	if err := json.Unmarshal(st.Raw, &params); err != nil {
		return err
	}
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
	c, id, err := p.stateOf(st.Actor)
	if err != nil {
		return err
	}
	cctx, cancel := p.call(ctx)
	defer cancel()
	resp, err := c.RPC.CreateBranch(cctx, &pb.CreateBranchRequest{StateId: id, GroupId: randomID(), Extensions: toPB(params.Extensions),
		KeyPackages: kps, ForcePath: params.ForcePath, ExternalTree: params.ExternalTree})
	if err != nil {
		return fmt.Errorf("%s branches: %w", st.Actor, err)
	}
	if params.ExternalTree != (len(resp.GetRatchetTree()) > 0) {
		return fmt.Errorf("ratchet tree returned %t, asked for it %t", len(resp.GetRatchetTree()) > 0, params.ExternalTree)
	}
	states := map[string]uint32{st.Actor: resp.GetStateId()}
	for k, m := range params.Members {
		mc, mid, err := p.stateOf(m)
		if err != nil {
			return err
		}
		hr, err := mc.RPC.HandleBranch(cctx, &pb.HandleBranchRequest{StateId: mid, TransactionId: txs[k], Welcome: resp.GetWelcome(), RatchetTree: resp.GetRatchetTree()})
		if err != nil {
			return fmt.Errorf("%s joins the branch: %w", m, err)
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

func (p *player) newMemberAddProposal(ctx context.Context, i int, st Step) error {
	var params struct {
		Joiner string `json:"joiner"`
	}
	if err := json.Unmarshal(st.Raw, &params); err != nil {
		return err
	}
	gi, _, err := p.fetchGroupInfo(ctx, st.Actor, false)
	if err != nil {
		return err
	}
	c, err := p.client(params.Joiner)
	if err != nil {
		return err
	}
	cctx, cancel := p.call(ctx)
	defer cancel()
	resp, err := c.RPC.NewMemberAddProposal(cctx, &pb.NewMemberAddProposalRequest{GroupInfo: gi, Identity: []byte(params.Joiner)})
	if err != nil {
		return fmt.Errorf("%s proposes to join: %w", params.Joiner, err)
	}
	p.transaction[params.Joiner] = resp.GetTransactionId()
	p.out[i]["proposal"] = resp.GetProposal()
	return nil
}

func (p *player) addExternalSigner(ctx context.Context, i int, st Step) error {
	var params struct {
		Signer string `json:"signer"`
	}
	if err := json.Unmarshal(st.Raw, &params); err != nil {
		return err
	}
	sc, err := p.client(params.Signer)
	if err != nil {
		return err
	}
	cctx, cancel := p.call(ctx)
	defer cancel()
	signer, err := sc.RPC.CreateExternalSigner(cctx, &pb.CreateExternalSignerRequest{CipherSuite: p.suite, Identity: []byte(params.Signer)})
	if err != nil {
		return err
	}
	p.signer[params.Signer] = signer.GetSignerId()
	c, id, err := p.stateOf(st.Actor)
	if err != nil {
		return err
	}
	resp, err := c.RPC.AddExternalSigner(cctx, &pb.AddExternalSignerRequest{StateId: id, ExternalSender: signer.GetExternalSender()})
	if err != nil {
		return fmt.Errorf("%s adds the external signer %s: %w", st.Actor, params.Signer, err)
	}
	p.out[i]["proposal"] = resp.GetProposal()
	return nil
}

func (p *player) externalSignerProposal(ctx context.Context, i int, st Step) error {
	var params struct {
		Member      string      `json:"member"`
		Description description `json:"description"`
	}
	if err := json.Unmarshal(st.Raw, &params); err != nil {
		return err
	}
	gi, tree, err := p.fetchGroupInfo(ctx, params.Member, true)
	if err != nil {
		return err
	}
	d, err := p.describe(params.Description)
	if err != nil {
		return err
	}
	c, err := p.client(st.Actor)
	if err != nil {
		return err
	}
	signer, ok := p.signer[st.Actor]
	if !ok {
		return fmt.Errorf("%s is no external signer", st.Actor)
	}
	cctx, cancel := p.call(ctx)
	defer cancel()
	resp, err := c.RPC.ExternalSignerProposal(cctx, &pb.ExternalSignerProposalRequest{SignerId: signer, GroupInfo: gi, RatchetTree: tree, Description: d})
	if err != nil {
		return fmt.Errorf("%s proposes: %w", st.Actor, err)
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
		c, id, err := p.stateOf(a)
		if err != nil {
			return err
		}
		cctx, cancel := p.call(ctx)
		sa, err := c.RPC.StateAuth(cctx, &pb.StateAuthRequest{StateId: id})
		if err != nil {
			cancel()
			return fmt.Errorf("%s: state auth: %w", a, err)
		}
		ex, err := c.RPC.Export(cctx, &pb.ExportRequest{StateId: id, Label: exportLabel, Context: []byte(exportContext), KeyLength: exportLength})
		cancel()
		if err != nil {
			return fmt.Errorf("%s: export: %w", a, err)
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
