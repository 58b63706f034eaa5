// Ringing: who calls whom travels among the conversation's members as
// MLS application messages (client.CallSignal: invite, join, decline,
// leave), end-to-end encrypted like any message: the server and its SFU
// never learn who rang or who declined. The core sends them (callSend)
// and reports them ("call_invite", "call_join", "call_decline",
// "call_leave" events); this file keeps the list of calls ringing in
// this page, and signals this page's own joins and leaves.

import type { Account, Core, CoreEvent } from '../core/bridge';
import { joinCall, onCall, type ActiveCall } from './sfu';

export interface Ring {
  conv: string;
  callId: string;
  from: string;
}

/** How long an unanswered call rings. */
const ringFor = 60_000;

/**
 * startCall places a call in conv, or joins the one going on there: the
 * core rings the others (or tells them we joined) and settles glare, two
 * members calling at once, on one call. Then this page joins it at the
 * SFU; if that fails (no microphone, say), the others learn we left.
 */
export async function startCall(core: Core, conv: string, title: string): Promise<ActiveCall> {
  const { callId, ringIfEmpty } = await core.call('callStart', { conv });
  try {
    return await joinCall(core, conv, title, callId, ringIfEmpty);
  } catch (e) {
    core.call('callSend', { conv, callId, op: 'leave' }).catch(() => {});
    throw e;
  }
}

/** joinRunning joins the call that rang (accepting a ring). */
export async function joinRunning(core: Core, conv: string, title: string, callId: string): Promise<ActiveCall> {
  forget(callId);
  const call = await joinCall(core, conv, title, callId);
  await core.call('callSend', { conv, callId, op: 'join' });
  return call;
}

/** declineRing tells the caller (and this user's other devices) no. */
export async function declineRing(core: Core, r: Ring) {
  forget(r.callId);
  await core.call('callSend', { conv: r.conv, callId: r.callId, op: 'decline' });
}

let rings: Ring[] = [];
let show: (r: Ring[]) => void = () => {};

function set(next: Ring[]) {
  rings = next;
  show(rings);
}

function forget(callId: string) {
  set(rings.filter((r) => r.callId !== callId));
}

/**
 * watchRings keeps the list of ringing calls current and passes it to
 * fn, and tells the others when this page leaves a call it was in.
 * onCallChange is told when a conversation's call starts or ends.
 */
export function watchRings(core: Core, account: Account, fn: (r: Ring[]) => void, onCallChange: (conv: string) => void): () => void {
  show = fn;
  fn(rings);
  let current: ActiveCall | null = null;
  const offCore = core.on((e: CoreEvent) => {
    switch (e.type) {
      case 'call_invite':
        onCallChange(e.conversation);
        // Our own invites (from this or another of our devices) do not
        // ring, nor does one while we are in that call.
        if (e.user === account.username || rings.some((r) => r.callId === e.callId) || current?.callId === e.callId) return;
        // An invite read late (this device was offline) may be for a call
        // that has ended since: ring only for the conversation's current one.
        core
          .call('currentCall', { conv: e.conversation })
          .then((st) => {
            if (st?.id !== e.callId || rings.some((r) => r.callId === e.callId) || current?.callId === e.callId) return;
            set([...rings, { conv: e.conversation, callId: e.callId, from: e.user }]);
            setTimeout(() => forget(e.callId), ringFor);
          })
          .catch(() => {});
        return;
      case 'call_join':
        onCallChange(e.conversation);
        // Answered on another of our devices: stop ringing here.
        if (e.user === account.username) forget(e.callId);
        return;
      case 'call_leave':
        onCallChange(e.conversation);
        // The caller gave up before anyone answered.
        if (rings.some((r) => r.callId === e.callId && r.from === e.user)) forget(e.callId);
        return;
      case 'call_decline':
        if (e.user === account.username) forget(e.callId);
        return;
    }
  });
  const offCall = onCall((c) => {
    if (current && c !== current) {
      const { conv, callId } = current;
      core.call('callSend', { conv, callId, op: 'leave' }).catch(() => {});
    }
    current = c;
  });
  return () => {
    offCore();
    offCall();
    show = () => {};
  };
}
