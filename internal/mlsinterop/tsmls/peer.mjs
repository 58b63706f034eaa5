// peer.mjs plays one MLS client with ts-mls (RFC 9420, TypeScript) for
// internal/mlsinterop/tsmls_test.go. It reads one JSON request per line on
// stdin and writes one JSON reply per line on stdout; byte strings are hex,
// MLS objects are TLS-encoded MLSMessages. Requests:
//
//	{"op":"init","suite":1,"identity":hex,"compressed":bool} -> {}
//	{"op":"create","group_id":hex}              -> {}
//	{"op":"key_package"}                        -> {"key_package":hex}
//	{"op":"join","welcome":hex,"ratchet_tree":hex?} -> {}
//	    (without ratchet_tree, the tree comes from the GroupInfo extension)
//	{"op":"commit","add":[hex],"remove":[n],"public":bool,"external_tree":bool}
//	    -> {"commit":hex,"welcome":hex?,"ratchet_tree":hex?}
//	    (commits the proposals received this epoch too, by reference)
//	{"op":"propose_remove","index":n,"public":bool} -> {"proposal":hex}
//	{"op":"process","message":hex}              -> {"kind":"commit"|"proposal"|"application","data":hex?}
//	{"op":"encrypt","data":hex}                 -> {"message":hex}
//	{"op":"state","label":str,"context":hex,"length":n}
//	    -> {"epoch":n,"epoch_authenticator":hex,"exported":hex,"index":n}
//
// ts-mls 1.6.4 encodes ECDSA signature public keys as compressed points
// (noble's default), where RFC 9420 and the official test vectors use the
// uncompressed form; unless init asks for "compressed", the peer derives
// the uncompressed key from the same private key. Its KeyPackages live 30
// days: ts-mls's defaultLifetime (0 to 2^63-1) exceeds the maximum total
// lifetime RFC 9420 §7.2 requires applications to enforce.
//
// Any failure is replied as {"error":string}; the peer keeps running.
import { createInterface } from "node:readline";
import {
  acceptAll,
  createApplicationMessage,
  createCommit,
  createGroup,
  createProposal,
  decodeMlsMessage,
  emptyPskIndex,
  encodeMlsMessage,
  defaultCapabilities,
  generateKeyPackageWithKey,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
  joinGroup,
  mlsExporter,
  processMessage,
  ciphersuites,
} from "ts-mls";
import { decodeRatchetTree, encodeRatchetTree } from "ts-mls/ratchetTree.js";

const hex = (b) => Buffer.from(b).toString("hex");
const unhex = (s) => new Uint8Array(Buffer.from(s, "hex"));

let impl; // CiphersuiteImpl
let curve; // the noble ECDSA curve of the suite, if any
let compressed = false;
let identity;
let pending; // {publicPackage, privatePackage} awaiting a Welcome
let state; // ClientState

function decode(data, want) {
  const r = decodeMlsMessage(unhex(data), 0);
  if (r === undefined) throw new Error("undecodable MLSMessage");
  const [m] = r;
  if (want !== undefined && m.wireformat !== want) throw new Error(`wire format ${m.wireformat}, want ${want}`);
  return m;
}

async function newKeyPackage() {
  const cred = { credentialType: "basic", identity };
  const key = await impl.signature.keygen();
  if (curve !== undefined && !compressed) key.publicKey = curve.getPublicKey(key.signKey, false);
  const now = BigInt(Math.floor(Date.now() / 1000));
  const lifetime = { notBefore: now - 3600n, notAfter: now + 30n * 86400n };
  return generateKeyPackageWithKey(cred, defaultCapabilities(), lifetime, [], key, impl);
}

const ops = {
  async init(req) {
    const name = Object.keys(ciphersuites).find((n) => ciphersuites[n] === req.suite);
    if (name === undefined) throw new Error(`unknown cipher suite ${req.suite}`);
    const suite = getCiphersuiteFromName(name);
    impl = await getCiphersuiteImpl(suite);
    const nist = { P256: "p256", P384: "p384", P521: "p521" }[suite.signature];
    curve = nist === undefined ? undefined : (await import("@noble/curves/nist.js"))[nist];
    compressed = !!req.compressed;
    identity = unhex(req.identity);
    return {};
  },
  async create(req) {
    const kp = await newKeyPackage();
    state = await createGroup(unhex(req.group_id), kp.publicPackage, kp.privatePackage, [], impl);
    return {};
  },
  async key_package() {
    pending = await newKeyPackage();
    const msg = encodeMlsMessage({ wireformat: "mls_key_package", version: "mls10", keyPackage: pending.publicPackage });
    return { key_package: hex(msg) };
  },
  async join(req) {
    if (pending === undefined) throw new Error("no KeyPackage awaits a Welcome");
    const w = decode(req.welcome, "mls_welcome");
    let tree;
    if (req.ratchet_tree !== undefined) {
      const r = decodeRatchetTree(unhex(req.ratchet_tree), 0);
      if (r === undefined) throw new Error("undecodable ratchet tree");
      tree = r[0];
    }
    state = await joinGroup(w.welcome, pending.publicPackage, pending.privatePackage, emptyPskIndex, impl, tree);
    pending = undefined;
    return {};
  },
  async commit(req) {
    const proposals = [];
    for (const kp of req.add ?? []) {
      const m = decode(kp, "mls_key_package");
      proposals.push({ proposalType: "add", add: { keyPackage: m.keyPackage } });
    }
    for (const i of req.remove ?? []) {
      proposals.push({ proposalType: "remove", remove: { removed: i } });
    }
    const res = await createCommit(
      { state, cipherSuite: impl },
      { extraProposals: proposals, ratchetTreeExtension: !req.external_tree, wireAsPublicMessage: !!req.public },
    );
    state = res.newState;
    const out = { commit: hex(encodeMlsMessage(res.commit)) };
    if (req.external_tree) out.ratchet_tree = hex(encodeRatchetTree(state.ratchetTree));
    if (res.welcome !== undefined) {
      out.welcome = hex(encodeMlsMessage({ wireformat: "mls_welcome", version: "mls10", welcome: res.welcome }));
    }
    return out;
  },
  async propose_remove(req) {
    const proposal = { proposalType: "remove", remove: { removed: req.index } };
    const res = await createProposal(state, !!req.public, proposal, impl);
    state = res.newState;
    return { proposal: hex(encodeMlsMessage(res.message)) };
  },
  async process(req) {
    const m = decode(req.message);
    if (m.wireformat !== "mls_private_message" && m.wireformat !== "mls_public_message") {
      throw new Error(`cannot process wire format ${m.wireformat}`);
    }
    const contentType = m.wireformat === "mls_private_message" ? m.privateMessage.contentType : m.publicMessage.content.contentType;
    const res = await processMessage(m, state, emptyPskIndex, acceptAll, impl);
    state = res.newState;
    if (res.kind === "applicationMessage") return { kind: "application", data: hex(res.message) };
    return { kind: contentType };
  },
  async encrypt(req) {
    const res = await createApplicationMessage(state, unhex(req.data), impl);
    state = res.newState;
    const msg = encodeMlsMessage({ wireformat: "mls_private_message", version: "mls10", privateMessage: res.privateMessage });
    return { message: hex(msg) };
  },
  async state(req) {
    const exported = await mlsExporter(state.keySchedule.exporterSecret, req.label, unhex(req.context), req.length, impl);
    return {
      epoch: Number(state.groupContext.epoch),
      epoch_authenticator: hex(state.keySchedule.epochAuthenticator),
      exported: hex(exported),
      index: Number(state.privatePath.leafIndex),
    };
  },
};

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of rl) {
  if (line.trim() === "") continue;
  let reply;
  try {
    const req = JSON.parse(line);
    const op = ops[req.op];
    if (op === undefined) throw new Error(`unknown op ${req.op}`);
    reply = await op(req);
  } catch (e) {
    reply = { error: String(e && e.stack ? e.stack : e) };
  }
  process.stdout.write(JSON.stringify(reply) + "\n");
}
