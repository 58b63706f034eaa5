// The encoded-transform worker of calls: RTCRtpScriptTransform hands it
// every encoded audio and video frame this page sends or receives, and it
// encrypts or decrypts each one with SFrame (RFC 9605) in Go — package
// sframe compiled to WebAssembly (web/wasm/sframe) — under keys from the
// conversation's MLS epoch, posted by the page (see secure.ts).

interface SFrame {
  setEpoch(epoch: number, groupSize: number, leafIndex: number, baseKey: Uint8Array): string | null;
  encrypt(video: boolean, frame: Uint8Array): Uint8Array | string;
  decrypt(frame: Uint8Array): Uint8Array | string | null;
}
interface EncodedFrame {
  data: ArrayBuffer;
}
interface RtcTransformer {
  readable: ReadableStream<EncodedFrame>;
  writable: WritableStream<EncodedFrame>;
  options: { side: 'send' | 'receive'; kind: 'audio' | 'video' };
}
interface Scope {
  importScripts(...urls: string[]): void;
  postMessage(m: unknown): void;
  onmessage: ((e: MessageEvent) => void) | null;
  onrtctransform: ((e: { transformer: RtcTransformer }) => void) | null;
  Go: new () => { importObject: WebAssembly.Imports; run(i: WebAssembly.Instance): Promise<void> };
  hushSFrame?: SFrame;
  hushSFrameReady?: () => void;
}
const scope = self as unknown as Scope;

scope.importScripts('/wasm_exec.js');
const ready = new Promise<SFrame>((resolve) => {
  scope.hushSFrameReady = () => resolve(scope.hushSFrame!);
  const go = new scope.Go();
  WebAssembly.instantiateStreaming(fetch('/sframe.wasm'), go.importObject).then(({ instance }) => void go.run(instance));
});

const stats = { encrypted: 0, encryptedAudio: 0, encryptedVideo: 0, decrypted: 0, replayed: 0, failed: 0, epoch: -1, error: '' };
let keyed: Promise<void> | null = null;

scope.onmessage = (e: MessageEvent) => {
  const m = e.data as { type: 'keys'; epoch: number; groupSize: number; leafIndex: number; baseKey: Uint8Array };
  if (m.type !== 'keys') return;
  keyed = ready.then((sf) => {
    // The same epoch again (a rekey that found no commit) changes nothing.
    const err = m.epoch > stats.epoch ? sf.setEpoch(m.epoch, m.groupSize, m.leafIndex, m.baseKey) : null;
    m.baseKey.fill(0);
    if (err) stats.error = err;
    else stats.epoch = Math.max(stats.epoch, m.epoch);
    scope.postMessage({ type: 'stats', ...stats });
    const ws = waiters;
    waiters = [];
    ws.forEach((w) => w());
  });
};

// A frame of an epoch this page has no key for yet: the sender merged a
// commit a moment before this page did. The page is asked to sync (which
// brings the commit, and new keys), and the frame waits for them, up to
// maxKeyWait, before it is dropped as one that does not open. A wait that
// brought no keys is not repeated for futileWaitPause, so that frames
// under a key ID nobody will ever have cannot stall the stream.
const maxKeyWait = 1500;
const futileWaitPause = 5000;
let waiters: Array<() => void> = [];
let futileUntil = 0;

function newKeys(): Promise<boolean> {
  if (Date.now() < futileUntil) return Promise.resolve(false);
  scope.postMessage({ type: 'unknown_key' });
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      waiters = waiters.filter((w) => w !== done);
      futileUntil = Date.now() + futileWaitPause;
      resolve(false);
    }, maxKeyWait);
    const done = () => {
      clearTimeout(t);
      resolve(true);
    };
    waiters.push(done);
  });
}

scope.onrtctransform = (e) => {
  const { side, kind } = e.transformer.options;
  const t = new TransformStream<EncodedFrame, EncodedFrame>({
    async transform(frame, out) {
      const sf = await ready;
      if (keyed) await keyed;
      const data = new Uint8Array(frame.data);
      let r: Uint8Array | string | null;
      try {
        r = side === 'send' ? sf.encrypt(kind === 'video', data) : sf.decrypt(data);
      } catch (err) {
        r = String(err);
      }
      if (side === 'receive' && typeof r === 'string' && r.includes('unknown key ID') && (await newKeys())) {
        if (keyed) await keyed;
        try {
          r = sf.decrypt(data);
        } catch (err) {
          r = String(err);
        }
      }
      if (r === null) {
        stats.replayed++; // a copy of a frame already played
        return;
      }
      if (typeof r === 'string') {
        // A frame that does not open is dropped, never played.
        stats.failed++;
        stats.error = r;
        return;
      }
      frame.data = r.buffer as ArrayBuffer;
      if (side === 'send') {
        stats.encrypted++;
        if (kind === 'video') stats.encryptedVideo++;
        else stats.encryptedAudio++;
      } else stats.decrypted++;
      out.enqueue(frame);
    },
  });
  void e.transformer.readable.pipeThrough(t).pipeTo(e.transformer.writable);
};

setInterval(() => scope.postMessage({ type: 'stats', ...stats }), 500);
