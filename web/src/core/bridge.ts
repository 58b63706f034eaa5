// The typed bridge to the Go client core (web/wasm), which runs as
// WebAssembly in this page. Every protocol operation — MLS, the message
// model, attachments' encryption, linking, safety numbers — happens in Go;
// this file only names the calls and their types.

import { Vault } from './vault';
import { upload } from './upload';

export interface Account {
  server: string;
  username: string;
  userId: string;
  deviceId: string;
  created: string;
}

export interface Attachment {
  blob_id: string;
  size: number;
  content_type?: string;
  name?: string;
}

export interface Reaction {
  emoji: string;
  user: string;
}

export interface Message {
  id: string;
  conversation: string;
  seq: number;
  sender: string;
  sender_device: string;
  time: string;
  type: 'text' | 'attachment';
  text?: string;
  reply_to?: string;
  attachment?: Attachment;
  reactions?: Reaction[];
  edited?: boolean;
  deleted?: boolean;
  read_by?: string[];
  outgoing?: boolean;
  read?: boolean;
  pending?: boolean;
  failed?: boolean;
  /** The disappearing-message timer it was sent with, in seconds. */
  timer?: number;
  /** When it disappears from this device (RFC 3339), once its timer started. */
  expires?: string;
}

export interface Conversation {
  id: string;
  kind: 'direct' | 'group';
  name?: string;
  peer?: string;
  active: boolean;
  created: string;
  last: string;
  title: string;
  unread: number;
  preview?: Message;
  /** The disappearing-message timer in seconds, 0 or absent if off. */
  timer?: number;
}

export interface Member {
  user: string;
  device: string;
  verified: boolean;
  self: boolean;
}

export interface Contact {
  username: string;
  verified: boolean;
  keyChanged: boolean;
  safetyNumber: string;
  formatted: string;
  qr: { size: number; bits: string };
}

export interface LinkOffer {
  code: string;
  expires: string;
  server: string;
  command: string;
}

export interface Device {
  id: string;
  issued: string;
  current: boolean;
  verified: boolean;
}

export type CoreEvent =
  | { type: 'message' | 'edit' | 'delete' | 'reaction' | 'receipt'; conversation: string; message?: Message; user?: string }
  | { type: 'typing'; conversation: string; user: string; device: string }
  | { type: 'member_added' | 'member_removed'; conversation: string; user: string }
  | { type: 'conversation'; conversation: string }
  | { type: 'identity_changed'; user: string }
  | { type: 'warning' | 'fatal' | 'link_failed'; text: string; conversation?: string }
  | { type: 'connection'; text: 'online' | 'offline' }
  | { type: 'linked'; device: string }
  | { type: 'upload'; conversation: string; upload: string; done: number; total: number }
  | { type: 'timer'; conversation: string; user?: string; text: string }
  | { type: 'expired'; conversation: string; message?: Message }
  | { type: 'epoch'; conversation: string }
  | { type: 'call_frame'; call: CallFrame }
  | { type: 'call_error'; text: string }
  | { type: 'call_invite' | 'call_join' | 'call_decline' | 'call_leave'; conversation: string; user: string; device: string; callId: string };

/** Call signalling among the members (MLS application messages). */
export type CallOp = 'invite' | 'join' | 'decline' | 'leave';

/** A conversation's call going on, as this device knows it. */
export interface CallState {
  id: string;
  started: string;
  /** device → user */
  devices: Record<string, string>;
}

/** A call signalling frame for the SFU (proto.Call). */
export interface CallFrame {
  group_id: string; // base64
  call_id: string;
  op: 'join' | 'offer' | 'answer' | 'leave' | 'ended' | 'moved';
  sdp?: string;
  ice_servers?: Array<{ urls: string[]; username?: string; credential?: string }>;
  reason?: string;
  /** With moved: the server node that hosts the call. */
  url?: string;
}

/** The calls of the core: name → [arguments, result]. */
interface Methods {
  account: [Record<string, never>, Account];
  register: [{ username: string }, Account];
  linkNew: [{ code: string }, Account];
  linkOffer: [Record<string, never>, LinkOffer];
  conversations: [Record<string, never>, Conversation[]];
  messages: [{ conv: string }, Message[]];
  members: [{ conv: string }, Member[]];
  direct: [{ user: string }, Conversation];
  createGroup: [{ name: string; users: string[] }, Conversation];
  addMembers: [{ conv: string; users: string[] }, null];
  removeMember: [{ conv: string; user: string }, null];
  send: [{ conv: string; text: string; replyTo?: string }, Message];
  react: [{ id: string; emoji: string }, Message];
  edit: [{ id: string; text: string }, Message];
  delete: [{ id: string }, null];
  markRead: [{ conv: string }, { count: number }];
  typing: [{ conv: string }, null];
  contact: [{ user: string }, Contact];
  confirmVerified: [{ user: string }, Contact];
  contacts: [Record<string, never>, Array<{ username: string; verified: boolean; keyChanged: boolean }>];
  devices: [Record<string, never>, Device[]];
  sync: [Record<string, never>, null];
  setTimer: [{ conv: string; seconds: number }, Conversation];
  shown: [{ conv: string; ids: string[] }, null];
  callSignal: [CallFrame, null];
  callSend: [{ conv: string; callId: string; op: CallOp }, null];
  callStart: [{ conv: string }, { callId: string; started: boolean; ringIfEmpty: boolean }];
  currentCall: [{ conv: string }, CallState | null];
  callKeys: [{ conv: string }, { epoch: number; groupSize: number; leafIndex: number; baseKey: string }];
  timerPresets: [Record<string, never>, Array<{ seconds: number; label: string }>];
}

interface RawCore {
  open(host: unknown): Promise<string | null>;
  call(method: string, args: string, data?: Uint8Array): Promise<string | Uint8Array | null>;
}

declare global {
  // Set by wasm_exec.js (Go's support file for js/wasm).
  // eslint-disable-next-line no-var
  var Go: new () => { importObject: WebAssembly.Imports; run(instance: WebAssembly.Instance): Promise<void> };
  // eslint-disable-next-line no-var
  var hushCore: RawCore | undefined;
  // eslint-disable-next-line no-var
  var hushCoreReady: (() => void) | undefined;
}

/** An error from the core, with the server's or the bridge's code. */
export class CoreError extends Error {
  constructor(
    message: string,
    public code: string,
  ) {
    super(message);
  }
}

/** friendly turns a core error into a sentence for people. */
export function friendly(e: unknown): string {
  if (e instanceof CoreError || e instanceof Error) {
    const code = (e as CoreError).code;
    switch (code) {
      case 'username_taken':
        return 'That username is taken. Try another one.';
      case 'not_found':
        return /look up/.test(e.message) ? 'There is no user with that name.' : 'Not found.';
      case 'identity_changed':
        return 'A safety number changed. Verify it before sending.';
      case 'bad_link_code':
        return 'That code does not look right. Copy it again from your other device.';
      case 'bad_timer':
        return 'That timer is not allowed.';
      case 'rate_limited':
        return 'Too many requests. Wait a moment and try again.';
    }
    return e.message.replace(/^(client|hush): /, '').replace(/^(client|hush): /, '');
  }
  return String(e);
}

export class Core {
  private listeners = new Set<(e: CoreEvent) => void>();
  /** Whether the push connection is up, as last reported. */
  online = false;
  private constructor(private raw: RawCore) {}

  /** Loads the WebAssembly core and opens this browser's vault. */
  static async load(wasmURL = '/hush.wasm'): Promise<{ core: Core; account: Account | null }> {
    const ready = new Promise<void>((resolve) => (globalThis.hushCoreReady = resolve));
    const go = new Go();
    const { instance } = await WebAssembly.instantiateStreaming(fetch(wasmURL), go.importObject);
    void go.run(instance);
    await ready;
    const raw = globalThis.hushCore!;
    const core = new Core(raw);
    const vault = await Vault.open();
    const [rows, storeKey] = await Promise.all([vault.load(), vault.storeKey()]);
    const acct = await raw.open({
      rows,
      storeKey,
      server: location.origin,
      persist: (puts: Array<[string, Uint8Array<ArrayBuffer>]>, dels: string[]) => vault.persist(puts, dels),
      upload,
      onEvent: (json: string) => {
        const e = JSON.parse(json) as CoreEvent;
        if (e.type === 'connection') core.online = e.text === 'online';
        // Never call back into the core from its own callback.
        queueMicrotask(() => core.listeners.forEach((l) => l(e)));
      },
    });
    storeKey.fill(0);
    return { core, account: acct ? (JSON.parse(acct) as Account) : null };
  }

  on(fn: (e: CoreEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  async call<M extends keyof Methods>(method: M, args: Methods[M][0] = {} as Methods[M][0], data?: Uint8Array): Promise<Methods[M][1]> {
    try {
      const r = await this.raw.call(method, JSON.stringify(args), data);
      return (typeof r === 'string' ? JSON.parse(r) : r) as Methods[M][1];
    } catch (e) {
      const err = e as Error & { code?: string };
      throw new CoreError(err.message, err.code ?? 'error');
    }
  }

  /** Sends a file; progress arrives as "upload" events named by uploadId. */
  sendAttachment(conv: string, file: { name: string; type: string; bytes: Uint8Array }, caption: string, uploadId: string): Promise<Message> {
    return this.callData('sendAttachment', { conv, name: file.name, contentType: file.type, caption, upload: uploadId }, file.bytes) as Promise<Message>;
  }

  /** Downloads, decrypts and checks a message's attachment. */
  async download(id: string): Promise<Uint8Array> {
    return (await this.callData('download', { id })) as Uint8Array;
  }

  private async callData(method: string, args: object, data?: Uint8Array): Promise<unknown> {
    try {
      const r = await this.raw.call(method, JSON.stringify(args), data);
      return typeof r === 'string' ? JSON.parse(r) : r;
    } catch (e) {
      const err = e as Error & { code?: string };
      throw new CoreError(err.message, err.code ?? 'error');
    }
  }
}
