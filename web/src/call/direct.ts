// A call's media in the page: the camera and microphone, one
// RTCPeerConnection, and SFrame on every sender and receiver
// (secure.ts). The SFU's signalling (proto.Call frames on the WebSocket)
// is not carried by the server yet; until it is, a DirectCall's SDP is
// carried by whoever connects the two pages — the end-to-end tests,
// through the TEST-ONLY hook installed by installTestHook.

import type { Core } from '../core/bridge';
import { SecureMedia, type MediaStats } from './secure';

export interface ActiveCall {
  conv: string;
  title: string;
  local: MediaStream;
  remote: MediaStream;
  media: SecureMedia;
  pc: RTCPeerConnection;
  hangup(): void;
}

const listeners = new Set<(c: ActiveCall | null) => void>();

/** onCall reports the call in progress (or null when it ends). */
export function onCall(fn: (c: ActiveCall | null) => void): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function announce(c: ActiveCall | null) {
  listeners.forEach((l) => l(c));
}

function gathered(pc: RTCPeerConnection): Promise<string> {
  // No trickle ICE: the SDP goes out with every candidate, as proto.Call
  // expects.
  return new Promise((resolve) => {
    const done = () => resolve(pc.localDescription!.sdp);
    if (pc.iceGatheringState === 'complete') return done();
    pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && done());
  });
}

export async function startDirectCall(core: Core, conv: string, title: string): Promise<ActiveCall> {
  const media = await SecureMedia.open(core, conv);
  const local = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 360 } });
  const pc = new RTCPeerConnection({ iceServers: [] });
  const remote = new MediaStream();
  for (const track of local.getTracks()) {
    const sender = pc.addTrack(track, local);
    media.protectSender(sender, track.kind as 'audio' | 'video');
  }
  // Receivers get their transform before negotiation: Chromium does not
  // route frames through one set later, in ontrack, once media flows
  // between processes.
  for (const t of pc.getTransceivers()) media.protectReceiver(t.receiver);
  pc.ontrack = (e) => {
    media.protectReceiver(e.receiver);
    remote.addTrack(e.track);
  };
  const call: ActiveCall = {
    conv,
    title,
    local,
    remote,
    media,
    pc,
    hangup() {
      pc.close();
      local.getTracks().forEach((t) => t.stop());
      media.close();
      announce(null);
    },
  };
  announce(call);
  return call;
}

/** Inbound video frames decoded and audio packets received, from getStats. */
export async function receivedStats(pc: RTCPeerConnection): Promise<{ framesDecoded: number; audioPackets: number }> {
  let framesDecoded = 0;
  let audioPackets = 0;
  (await pc.getStats()).forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'video') framesDecoded += r.framesDecoded ?? 0;
    if (r.type === 'inbound-rtp' && r.kind === 'audio') audioPackets += r.packetsReceived ?? 0;
  });
  return { framesDecoded, audioPackets };
}

declare global {
  // eslint-disable-next-line no-var
  var __hushTestDirectCall: unknown;
}

/**
 * installTestHook puts globalThis.__hushTestDirectCall on the page: a
 * TEST-ONLY way to start a call whose SDP the end-to-end tests carry from
 * page to page. It exposes no secret: keys stay in the worker.
 */
export function installTestHook(core: Core) {
  let call: ActiveCall | null = null;
  globalThis.__hushTestDirectCall = {
    async offer(conv: string, title: string): Promise<string> {
      call = await startDirectCall(core, conv, title);
      await call.pc.setLocalDescription(await call.pc.createOffer());
      return gathered(call.pc);
    },
    async answer(conv: string, title: string, offer: string): Promise<string> {
      call = await startDirectCall(core, conv, title);
      await call.pc.setRemoteDescription({ type: 'offer', sdp: offer });
      await call.pc.setLocalDescription(await call.pc.createAnswer());
      return gathered(call.pc);
    },
    async accept(answer: string) {
      await call!.pc.setRemoteDescription({ type: 'answer', sdp: answer });
    },
    async stats(): Promise<MediaStats & { framesDecoded: number; audioPackets: number }> {
      return { ...call!.media.stats, ...(await receivedStats(call!.pc)) };
    },
    hangup() {
      call?.hangup();
      call = null;
    },
  };
}
