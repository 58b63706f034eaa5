// Call media protection in the page: RTCRtpScriptTransform on every
// sender and receiver, with SFrame applied in the worker (worker.ts) under
// keys the core exports from the conversation's MLS group. The keys follow
// the group: every commit (a member added or removed) moves them to the
// new epoch; frames of the few previous epochs still decrypt.

import type { Core } from '../core/bridge';

export interface MediaStats {
  encrypted: number;
  /** Frames encrypted by kind: > 0 proves that kind's sender is transformed. */
  encryptedAudio: number;
  encryptedVideo: number;
  decrypted: number;
  replayed: number;
  failed: number;
  epoch: number;
  error: string;
}

function fromBase64(s: string): Uint8Array {
  return Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
}

export class SecureMedia {
  stats: MediaStats = { encrypted: 0, encryptedAudio: 0, encryptedVideo: 0, decrypted: 0, replayed: 0, failed: 0, epoch: -1, error: '' };
  private worker: Worker;
  private off: () => void;

  private constructor(
    private core: Core,
    private conv: string,
  ) {
    this.worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'classic', name: 'hush-sframe' });
    this.worker.onmessage = (e) => {
      if (e.data.type === 'stats') this.stats = e.data as MediaStats;
      if (e.data.type === 'unknown_key') this.catchUp();
    };
    this.off = core.on((e) => {
      // Every commit the core merges moves the epoch, and the keys with it.
      if ('conversation' in e && e.conversation === conv && (e.type === 'epoch' || e.type === 'member_added' || e.type === 'member_removed' || e.type === 'conversation')) void this.rekey();
    });
  }

  /** Keys a worker for the calls of conversation conv. */
  static async open(core: Core, conv: string): Promise<SecureMedia> {
    const m = new SecureMedia(core, conv);
    await m.rekey();
    return m;
  }

  /** Sends the keys of the conversation's current epoch to the worker. */
  async rekey() {
    const k = await this.core.call('callKeys', { conv: this.conv });
    const baseKey = fromBase64(k.baseKey);
    this.worker.postMessage({ type: 'keys', epoch: k.epoch, groupSize: k.groupSize, leafIndex: k.leafIndex, baseKey }, [baseKey.buffer]);
  }

  private catchingUp = false;

  /**
   * catchUp fetches what the server holds for the conversation (a commit
   * another member merged first) and rekeys: a frame has arrived under a
   * key ID of an epoch this page does not have yet.
   */
  private catchUp() {
    if (this.catchingUp) return;
    this.catchingUp = true;
    this.core
      .call('sync')
      .catch(() => {})
      .then(() => this.rekey())
      .catch(() => {})
      .finally(() => (this.catchingUp = false));
  }

  protectSender(sender: RTCRtpSender, kind: 'audio' | 'video') {
    sender.transform = new RTCRtpScriptTransform(this.worker, { side: 'send', kind });
  }

  protectReceiver(receiver: RTCRtpReceiver) {
    if (receiver.transform) return;
    receiver.transform = new RTCRtpScriptTransform(this.worker, { side: 'receive', kind: receiver.track.kind });
  }

  close() {
    this.off();
    this.worker.terminate();
  }
}
