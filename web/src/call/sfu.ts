// A call in the page, through the server's SFU (server/calls), as the Go
// clients make one (client/call): one RTCPeerConnection to the SFU, the
// camera and microphone published on it, every other participant's audio
// and video received on it, and SFrame on every sender and receiver
// (secure.ts) under keys from the conversation's MLS group.
//
// Signalling (proto.Call frames on the push WebSocket, through the
// bridge's callSignal and "call_frame" events): the page sends join; the
// SFU makes every offer (on join, and whenever the tracks it forwards
// change) with all its ICE candidates; the page answers each one with the
// SDP of its RTCPeerConnection as it is, its candidates gathered in full.
// The SDP carries no a=sframe (docs/PROTOCOL.md, "Calls"): that attribute
// announces the SFrame RTP payload format, and Hush, like every browser's
// encoded transform, carries SFrame ciphertext in the codecs' own payload
// formats (Opus; VP8 with its descriptor in the clear). The SFU's first two sections
// receive (recvonly): the page publishes its microphone and camera there.
// The sections after them send (sendonly): other participants' tracks,
// one stream per device, which the page receives.

import type { CallFrame, Core, CoreEvent } from '../core/bridge';
import { SecureMedia } from './secure';

export type CallState = 'joining' | 'connected' | 'reconnecting' | 'ended';

export interface ActiveCall {
  conv: string;
  callId: string;
  title: string;
  local: MediaStream;
  /** What each other participant sends, by device (the SFU's stream id). */
  remotes: Map<string, MediaStream>;
  media: SecureMedia;
  pc: RTCPeerConnection | null;
  state: CallState;
  /** Why the call ended, if the SFU or the connection ended it. */
  reason: string;
  /** Whether our microphone (audio) or camera (video) is off. */
  muted: { audio: boolean; video: boolean };
  /**
   * setMuted turns our microphone or camera off or on: a muted track
   * sends silence or black frames, still encrypted, so that the call's
   * streams and keys stay as they are.
   */
  setMuted(kind: 'audio' | 'video', muted: boolean): void;
  hangup(reason?: string): void;
}

type Listener = (c: ActiveCall | null, endReason?: string) => void;
const listeners = new Set<Listener>();
let current: SfuCall | null = null;

/**
 * onCall reports the call in progress, each change of it, and null when
 * it ends, with why if it did not end by hanging up.
 */
export function onCall(fn: Listener): () => void {
  listeners.add(fn);
  fn(current);
  return () => listeners.delete(fn);
}

function announce(c: ActiveCall | null, endReason?: string) {
  listeners.forEach((l) => l(c, endReason));
}

/** The call in progress, if any. */
export function activeCall(): ActiveCall | null {
  return current;
}

/**
 * retryable: the SFU's reasons for ending our part in a call (an "ended"
 * frame) that a new join may cure; the others (removed from the group,
 * joined from another connection, any reason not known here) are final.
 * As client/call's Retryable.
 */
const retryable = new Set([
  'connection failed',
  'server shutting down',
  'the call moved to another server node',
  'lost the server node hosting the call',
  'the call ended on the server node hosting it',
]);

/** How long a call that lost its connection tries to rejoin, as client/call's DefaultRejoinFor. */
const rejoinFor = 30_000;
/** How long a rejoin whose join went out waits for its PeerConnection to connect. */
const rejoinWait = 10_000;

/** The conversation id is the MLS group id in hex; proto.Call carries it in base64. */
export function groupIdBase64(conv: string): string {
  const bytes = conv.match(/../g)?.map((h) => parseInt(h, 16)) ?? [];
  return btoa(String.fromCharCode(...bytes));
}

/** directions maps each media section's mid to its direction in an SDP. */
function directions(sdp: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const s of sdp.split(/\r\n(?=m=)/).slice(1)) {
    const mid = /\r\na=mid:(\S+)/.exec(s)?.[1];
    const dir = /\r\na=(sendrecv|sendonly|recvonly|inactive)(\r\n|$)/.exec(s)?.[1] ?? 'sendrecv';
    if (mid !== undefined) out.set(mid, dir);
  }
  return out;
}

function gathered(pc: RTCPeerConnection): Promise<string> {
  // No trickle ICE: the SDP goes out with every candidate, as proto.Call
  // expects.
  return new Promise((resolve) => {
    const done = () => resolve(pc.localDescription!.sdp);
    if (pc.iceGatheringState === 'complete') return done();
    const check = () => {
      if (pc.iceGatheringState !== 'complete') return;
      pc.removeEventListener('icegatheringstatechange', check);
      done();
    };
    pc.addEventListener('icegatheringstatechange', check);
  });
}

/** withTimeout rejects if p has not settled within 5 seconds. */
function withTimeout<T>(p: Promise<T>): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error('timed out')), 5_000))]);
}

class SfuCall implements ActiveCall {
  remotes = new Map<string, MediaStream>();
  pc: RTCPeerConnection | null = null;
  state: CallState = 'joining';
  reason = '';
  muted = { audio: false, video: false };
  private published = new Set<RTCRtpSender>(); // our microphone's and camera's
  private queue: Promise<void> = Promise.resolve();
  private off: () => void;
  private groupId: string;
  // Rejoining after a lost connection: when to give up, the next attempt.
  private giveUp = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private lostReason = '';
  // Counts the PeerConnections dropped: an offer, or a rejoin, of an
  // earlier one is not carried on.
  private gen = 0;
  // The worker's encrypted-frame counts when the current PeerConnection
  // was made: its senders are proven to encrypt once the counts pass them.
  private encryptedBase = { audio: 0, video: 0 };

  constructor(
    private core: Core,
    public conv: string,
    public callId: string,
    public title: string,
    public local: MediaStream,
    public media: SecureMedia,
    private ringIfEmpty: boolean,
  ) {
    this.groupId = groupIdBase64(conv);
    this.off = core.on((e) => this.onEvent(e));
  }

  private onEvent(e: CoreEvent) {
    if (e.type === 'call_error') {
      // While rejoining, a refusal (the old place not yet freed, say) is
      // one failed attempt: the next one follows.
      if (this.state === 'reconnecting') {
        console.warn(`call: rejoin refused (${e.text})`);
        return;
      }
      this.end(`The server refused the call (${e.text}).`);
      return;
    }
    if (e.type === 'connection' && e.text === 'offline') {
      // The SFU ends a device's calls with its connection: rejoin once
      // the core's push connection is back.
      this.lose('the connection to the server dropped', false);
      return;
    }
    if (e.type === 'connection' && e.text === 'online') {
      // A new push connection: the old one closed, and the SFU let us
      // out of the room with it.
      this.lose('the connection to the server dropped', true);
      return;
    }
    if (e.type !== 'call_frame' || e.call.call_id !== this.callId || e.call.group_id !== this.groupId) return;
    const f = e.call;
    if (f.op === 'ended') {
      if (f.reason && retryable.has(f.reason)) {
        this.lose(f.reason, true);
        return;
      }
      this.end(f.reason ? `The call ended: ${f.reason}.` : 'The call ended.');
      return;
    }
    if (f.op === 'moved') {
      // The room is on another node of a cluster. The page may connect to
      // its own origin only (Content-Security-Policy), so it cannot follow.
      this.end(`This call is hosted by another server node (${f.url ?? 'unknown'}), which the web client cannot reach yet.`);
      return;
    }
    if (f.op === 'offer' && f.sdp) {
      // Offers are answered one at a time, in order.
      const gen = this.gen;
      this.queue = this.queue.then(() => (gen === this.gen ? this.answer(f) : undefined)).catch((err) => this.hangup(`The call failed: ${String(err)}`));
    }
  }

  private frame(op: CallFrame['op'], sdp?: string): CallFrame {
    return { group_id: this.groupId, call_id: this.callId, op, ...(sdp ? { sdp } : {}) };
  }

  async join() {
    await this.core.call('callSignal', this.frame('join'));
  }

  private newPeerConnection(servers: CallFrame['ice_servers']) {
    const pc = new RTCPeerConnection({ iceServers: servers ?? [], bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
    pc.ontrack = (e) => {
      this.media.protectReceiver(e.receiver);
      const device = e.streams[0]?.id ?? e.track.id;
      let s = this.remotes.get(device);
      if (!s) {
        s = new MediaStream();
        this.remotes.set(device, s);
      }
      s.addTrack(e.track);
      const stream = s;
      const drop = () => {
        stream.removeTrack(e.track);
        if (stream.getTracks().length === 0 && this.remotes.get(device) === stream) this.remotes.delete(device);
        this.changed();
      };
      e.streams[0]?.addEventListener('removetrack', (r) => r.track === e.track && drop());
      e.track.addEventListener('ended', drop);
      this.changed();
    };
    pc.onconnectionstatechange = () => {
      if (pc !== this.pc) return; // an old one, closed by a rejoin
      if (pc.connectionState === 'connected' && (this.state === 'joining' || this.state === 'reconnecting')) {
        this.state = 'connected';
        clearTimeout(this.retryTimer);
        this.changed();
      }
      if (pc.connectionState === 'failed') this.lose('connection failed', true);
    };
    // Our microphone and camera, each with its transform, before the
    // first offer: applying it pairs them with the SFU's first audio and
    // video sections, which receive (recvonly). Chromium applies a
    // sender's transform only if it is set so, on a sender addTrack made;
    // one set on a transceiver that the offer made sends in the clear.
    //
    // A track starts disabled (silence, black frames) and is enabled once
    // the worker has encrypted a frame of its kind: if a transform ever
    // failed to attach, nothing but silence and black would leave the
    // page, and the call ends (see guard).
    for (const track of this.local.getTracks()) {
      track.enabled = false;
      const sender = pc.addTrack(track, this.local);
      this.media.protectSender(sender, track.kind as 'audio' | 'video');
      this.published.add(sender);
    }
    this.pc = pc;
    const st = this.media.stats;
    this.encryptedBase = { audio: st.encryptedAudio, video: st.encryptedVideo };
    this.guardStart = 0;
    clearInterval(this.guardTimer);
    this.guardTimer = setInterval(() => void this.guard(), 250);
  }

  /** proven reports whether our senders of kind encrypt on the current PeerConnection. */
  private proven(kind: string): boolean {
    const st = this.media.stats;
    return kind === 'video' ? st.encryptedVideo > this.encryptedBase.video : st.encryptedAudio > this.encryptedBase.audio;
  }

  /**
   * lose handles the loss of our place in the call (the push connection
   * dropped, the PeerConnection failed, or the SFU ended our part for a
   * retryable reason): the call shows "Reconnecting…" and joins the same
   * call again with a fresh PeerConnection and the same keys, without
   * ringing anyone, for up to 30 seconds. now: try at once (the
   * connection is back) rather than waiting for it.
   */
  private lose(reason: string, now: boolean) {
    if (this.state === 'ended') return;
    if (this.state !== 'reconnecting') {
      this.state = 'reconnecting';
      this.giveUp = Date.now() + rejoinFor;
      this.reset();
      this.changed();
    }
    this.lostReason = reason;
    clearTimeout(this.retryTimer);
    if (now) void this.rejoin();
    else this.retryTimer = setTimeout(() => void this.rejoin(), Math.max(0, this.giveUp - Date.now()));
  }

  /** reset drops the PeerConnection and the streams received on it. */
  private reset() {
    const pc = this.pc;
    this.pc = null;
    this.gen++;
    // An answer of the old PeerConnection may wait for ever (its
    // gathering never completes once closed): offers of the new one do
    // not queue behind it.
    this.queue = Promise.resolve();
    this.published.clear();
    this.remotes.clear();
    pc?.close();
  }

  /** rejoin makes one attempt to join the call again. */
  private async rejoin() {
    if (this.state !== 'reconnecting') return;
    const left = this.giveUp - Date.now();
    if (left <= 0) {
      this.end(`The call could not reconnect (${this.lostReason}).`);
      return;
    }
    // Offers of the old PeerConnection still queued are not answered on
    // the new one.
    this.reset();
    const gen = this.gen;
    let wait = 2_000;
    try {
      // The SFU may still hold us in the room on this connection, and
      // refuses a second join on one connection.
      await withTimeout(this.core.call('callSignal', this.frame('leave'))).catch(() => {});
      await withTimeout(this.core.call('callSignal', this.frame('join')));
      wait = rejoinWait;
    } catch (e) {
      // Offline: the core's reconnection ("online") tries again sooner.
      console.warn(`call: rejoin: ${String(e)}`);
    }
    if (this.state !== 'reconnecting' || gen !== this.gen) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => void this.rejoin(), Math.min(wait, left));
  }

  private guardTimer: ReturnType<typeof setInterval> | undefined;
  private guardStart = 0;

  /**
   * guard enables each local track once its sender is proven to encrypt
   * (the worker counted an encrypted frame of that kind), and ends the
   * call if packets of a kind leave while the worker has encrypted none:
   * its frames would be in the clear.
   */
  setMuted(kind: 'audio' | 'video', muted: boolean) {
    this.muted = { ...this.muted, [kind]: muted };
    const proven = this.proven(kind);
    // An unproven track stays disabled; guard enables it, muted or not,
    // once its sender is proven to encrypt.
    for (const t of this.local.getTracks()) if (t.kind === kind && proven) t.enabled = !muted;
    this.changed();
  }

  private async guard() {
    let pending = false;
    for (const t of this.local.getTracks()) {
      const proven = this.proven(t.kind);
      if (proven) t.enabled = !this.muted[t.kind as 'audio' | 'video'];
      else pending = true;
    }
    if (!pending) {
      clearInterval(this.guardTimer);
      return;
    }
    if (!this.pc || this.pc.connectionState !== 'connected') return;
    this.guardStart ||= Date.now();
    const sent = { audio: 0, video: 0 };
    (await this.pc.getStats()).forEach((r) => {
      if (r.type === 'outbound-rtp' && (r.kind === 'audio' || r.kind === 'video')) sent[r.kind as 'audio' | 'video'] += r.packetsSent ?? 0;
    });
    if ((sent.audio > 50 && !this.proven('audio')) || (sent.video > 50 && !this.proven('video')) || Date.now() - this.guardStart > 15_000) {
      this.hangup('The camera or microphone could not be encrypted, so the call ended.');
    }
  }

  private async answer(f: CallFrame) {
    if (this.state === 'ended') return;
    if (!this.pc) this.newPeerConnection(f.ice_servers);
    const pc = this.pc!;
    await pc.setRemoteDescription({ type: 'offer', sdp: f.sdp! });
    const dirs = directions(f.sdp!);
    for (const t of pc.getTransceivers()) {
      const dir = t.mid === null ? undefined : dirs.get(t.mid);
      if (t.sender.track && this.published.has(t.sender)) {
        // Ours, paired with the SFU's receiving section of its kind.
        if (dir !== 'recvonly') throw new Error(`the SFU does not receive our ${t.sender.track.kind}`);
        t.direction = 'sendonly';
      } else if (dir === 'sendonly') {
        // Receivers get their transform before the answer: Chromium does
        // not route frames through one set later, once media flows.
        this.media.protectReceiver(t.receiver);
        t.direction = 'recvonly';
      }
    }
    await pc.setLocalDescription(await pc.createAnswer());
    const sdp = await gathered(pc);
    if (this.ended()) return;
    await this.core.call('callSignal', this.frame('answer', sdp));
    if (this.ringIfEmpty) {
      this.ringIfEmpty = false;
      // Joined a call that may have outlived everyone in it (a device
      // that vanished never says it left): with nobody else's stream in
      // the SFU's first offer, invite the members again (client/call's
      // Session does the same).
      if (![...dirs.values()].includes('sendonly')) {
        this.core.call('callSend', { conv: this.conv, callId: this.callId, op: 'invite' }).catch(() => {});
      }
    }
  }

  private ended() {
    return this.state === 'ended';
  }

  private changed() {
    if (current === this) announce(this);
  }

  /** end closes the call's media; the SFU has already let us go. */
  private end(reason: string) {
    if (this.state === 'ended') return;
    this.state = 'ended';
    this.reason = reason;
    this.off();
    clearInterval(this.guardTimer);
    clearTimeout(this.retryTimer);
    this.pc?.close();
    this.local.getTracks().forEach((t) => t.stop());
    this.media.close();
    if (current === this) {
      current = null;
      announce(null, reason);
    }
  }

  hangup(reason = '') {
    if (this.state === 'ended') return;
    this.core.call('callSignal', this.frame('leave')).catch(() => {});
    this.end(reason);
  }
}

/**
 * joinCall enters call callId of conversation conv through the SFU,
 * publishing the camera and microphone. The call's id comes from the
 * core: callStart (placing a call, or joining the one going on) or a ring.
 * ringIfEmpty invites the members again if the SFU's first offer shows
 * nobody else in the call (callStart says when).
 */
export async function joinCall(core: Core, conv: string, title: string, callId: string, ringIfEmpty = false): Promise<ActiveCall> {
  if (current) throw new Error('You are already in a call.');
  const media = await SecureMedia.open(core, conv);
  let local: MediaStream;
  try {
    local = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 360 } }).catch((e) => {
      // No camera (or none allowed): an audio call.
      if (e instanceof DOMException && (e.name === 'NotFoundError' || e.name === 'NotReadableError' || e.name === 'OverconstrainedError'))
        return navigator.mediaDevices.getUserMedia({ audio: true });
      throw e;
    });
  } catch (e) {
    media.close();
    throw e instanceof DOMException && e.name === 'NotAllowedError' ? new Error('Hush needs your microphone for calls: allow it in the browser and try again.') : e;
  }
  const call = new SfuCall(core, conv, callId, title, local, media, ringIfEmpty);
  current = call;
  announce(call);
  try {
    await call.join();
  } catch (e) {
    call.hangup();
    throw e;
  }
  return call;
}

/** Inbound video frames decoded and audio packets received, from getStats. */
export async function receivedStats(pc: RTCPeerConnection | null): Promise<{ framesDecoded: number; audioPackets: number }> {
  let framesDecoded = 0;
  let audioPackets = 0;
  (await pc?.getStats())?.forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'video') framesDecoded += r.framesDecoded ?? 0;
    if (r.type === 'inbound-rtp' && r.kind === 'audio') audioPackets += r.packetsReceived ?? 0;
  });
  return { framesDecoded, audioPackets };
}
