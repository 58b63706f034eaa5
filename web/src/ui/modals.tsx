import { useEffect, useState } from 'preact/hooks';
import type { ComponentChildren } from 'preact';
import type { AppState } from '../app';
import { friendly, type Contact, type Device, type LinkOffer } from '../core/bridge';
import { cls, shortTime } from '../util';
import * as I from './icons';

export type ModalState =
  | { kind: 'new-chat' }
  | { kind: 'new-group' }
  | { kind: 'safety'; user: string }
  | { kind: 'link-device' }
  | { kind: 'devices' }
  | { kind: 'timer'; conv: string };

interface Props {
  state: AppState;
  modal: ModalState;
  onClose: () => void;
  onOpen: (conv: string) => void;
  onError: (e: unknown) => void;
  refresh: () => void;
}

export function Modal(p: Props) {
  useEffect(() => {
    const esc = (e: KeyboardEvent) => e.key === 'Escape' && p.onClose();
    addEventListener('keydown', esc);
    return () => removeEventListener('keydown', esc);
  }, []);
  return (
    <div class="overlay" onClick={(e) => e.target === e.currentTarget && p.onClose()}>
      <div class="modal card" role="dialog" aria-modal="true" data-testid={`modal-${p.modal.kind}`}>
        {p.modal.kind === 'new-chat' && <NewChat {...p} />}
        {p.modal.kind === 'new-group' && <NewGroup {...p} />}
        {p.modal.kind === 'safety' && <Safety {...p} user={p.modal.user} />}
        {p.modal.kind === 'link-device' && <LinkDevice {...p} />}
        {p.modal.kind === 'devices' && <Devices {...p} />}
        {p.modal.kind === 'timer' && <TimerPicker {...p} conv={p.modal.conv} />}
      </div>
    </div>
  );
}

function Head({ title, onClose, children }: { title: string; onClose: () => void; children?: ComponentChildren }) {
  return (
    <header class="modal-head">
      <div>
        <h3>{title}</h3>
        {children && <p class="muted">{children}</p>}
      </div>
      <button class="icon-btn" onClick={onClose} title="Close">
        <I.Close />
      </button>
    </header>
  );
}

function useSubmit(fn: () => Promise<void>) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await fn();
    } catch (err) {
      setError(friendly(err));
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, submit };
}

function NewChat(p: Props) {
  const [user, setUser] = useState('');
  const { busy, error, submit } = useSubmit(async () => {
    const cv = await p.state.core.call('direct', { user: user.trim().replace(/^@/, '') });
    p.onOpen(cv.id);
  });
  return (
    <form onSubmit={submit}>
      <Head title="New chat" onClose={p.onClose}>
        Start an end-to-end encrypted chat with someone on this server.
      </Head>
      <label class="field">
        <span>Username</span>
        <div class="input-prefix">
          <span>@</span>
          <input autoFocus value={user} onInput={(e) => setUser((e.target as HTMLInputElement).value)} placeholder="bob" data-testid="new-chat-user" />
        </div>
      </label>
      {error && <p class="error">{error}</p>}
      <footer class="modal-foot">
        <button type="button" class="btn" onClick={p.onClose}>
          Cancel
        </button>
        <button class="btn primary" disabled={busy || user.trim().length < 3} data-testid="new-chat-start">
          {busy ? 'Setting up keys…' : 'Start chat'}
        </button>
      </footer>
    </form>
  );
}

function NewGroup(p: Props) {
  const [name, setName] = useState('');
  const [users, setUsers] = useState('');
  const list = users
    .split(/[\s,]+/)
    .map((u) => u.replace(/^@/, '').toLowerCase())
    .filter(Boolean);
  const { busy, error, submit } = useSubmit(async () => {
    const cv = await p.state.core.call('createGroup', { name: name.trim(), users: list });
    p.onOpen(cv.id);
  });
  return (
    <form onSubmit={submit}>
      <Head title="New group" onClose={p.onClose}>
        The group's name and members' messages are encrypted; the server never learns the name.
      </Head>
      <label class="field">
        <span>Group name</span>
        <input autoFocus value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} placeholder="Weekend trip" data-testid="group-name" />
      </label>
      <label class="field">
        <span>Members</span>
        <input value={users} onInput={(e) => setUsers((e.target as HTMLInputElement).value)} placeholder="bob, carol" data-testid="group-members" />
        <small>Usernames, separated by commas or spaces. Each joins with all their devices.</small>
      </label>
      {list.length > 0 && (
        <div class="chips">
          {list.map((u) => (
            <span class="chip static">@{u}</span>
          ))}
        </div>
      )}
      {error && <p class="error">{error}</p>}
      <footer class="modal-foot">
        <button type="button" class="btn" onClick={p.onClose}>
          Cancel
        </button>
        <button class="btn primary" disabled={busy || !name.trim() || list.length === 0} data-testid="group-create">
          {busy ? 'Creating…' : 'Create group'}
        </button>
      </footer>
    </form>
  );
}

export function QR({ bits, size, px = 200 }: { bits: string; size: number; px?: number }) {
  const quiet = 4;
  const n = size + 2 * quiet;
  let d = '';
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++) if (bits[y * size + x] === '1') d += `M${x + quiet} ${y + quiet}h1v1h-1z`;
  return (
    <svg class="qr" width={px} height={px} viewBox={`0 0 ${n} ${n}`} shape-rendering="crispEdges" data-testid="qr">
      <rect width={n} height={n} fill="#fff" />
      <path d={d} fill="#111" />
    </svg>
  );
}

function Safety(p: Props & { user: string }) {
  const [c, setC] = useState<Contact | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    p.state.core.call('contact', { user: p.user }).then(setC, (e) => setError(friendly(e)));
  }, [p.user]);
  const confirm = async () => {
    try {
      setC(await p.state.core.call('confirmVerified', { user: p.user }));
      p.refresh();
    } catch (e) {
      setError(friendly(e));
    }
  };
  return (
    <div>
      <Head title={`Verify ${p.user}`} onClose={p.onClose}>
        Compare these numbers with {p.user} in person or on a call, or scan each other's code with <code>hush verify</code>. If they match, no one is in the middle.
      </Head>
      {error && <p class="error">{error}</p>}
      {!c && !error && <div class="spinner" />}
      {c && (
        <div class="safety" data-testid="safety">
          {c.keyChanged && (
            <p class="warning">
              <I.Alert size={16} /> {p.user}'s identity key changed. Compare the new number before you send again.
            </p>
          )}
          <QR bits={c.qr.bits} size={c.qr.size} />
          <div class="digits" data-testid="safety-number">
            {c.safetyNumber.match(/.{5}/g)!.map((g) => (
              <span>{g}</span>
            ))}
          </div>
          {c.verified && !c.keyChanged ? (
            <p class="verified" data-testid="verified">
              <I.ShieldCheck size={18} /> You have verified {p.user}.
            </p>
          ) : (
            <button class="btn primary wide" onClick={confirm} data-testid="mark-verified">
              <I.ShieldCheck size={18} /> Mark as verified
            </button>
          )}
        </div>
      )}
    </div>
  );
}

function LinkDevice(p: Props) {
  const [offer, setOffer] = useState<LinkOffer | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [linked, setLinked] = useState<string | null>(null);
  useEffect(() => {
    p.state.core.call('linkOffer').then(setOffer, (e) => setError(friendly(e)));
    return p.state.core.on((e) => {
      if (e.type === 'linked') setLinked(e.device);
      if (e.type === 'link_failed') setError(e.text);
    });
  }, []);
  return (
    <div>
      <Head title="Link a device" onClose={p.onClose}>
        Type this one-time code on the new device: in another browser choose <b>Link a device</b>, or in a terminal run the command below. It expires in a few
        minutes; whoever has it can join your account, so share it with no one.
      </Head>
      {error && <p class="error">{error}</p>}
      {!offer && !error && <div class="spinner" />}
      {offer && !linked && (
        <div class="link-offer">
          <div class="code mono" data-testid="link-offer-code">
            {offer.code}
          </div>
          <pre class="command" data-testid="link-command">
            {offer.command}
          </pre>
          <p class="muted waiting">
            <span class="spinner small" /> Waiting for the new device…
          </p>
        </div>
      )}
      {linked && (
        <p class="verified" data-testid="linked">
          <I.Check /> Linked. The new device gets every conversation's new messages from now on.
        </p>
      )}
    </div>
  );
}

function Devices(p: Props) {
  const [devs, setDevs] = useState<Device[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    p.state.core.call('devices').then(setDevs, (e) => setError(friendly(e)));
  }, []);
  return (
    <div>
      <Head title="Your devices" onClose={p.onClose}>
        Each device has its own keys, certified by your account's identity key.
      </Head>
      {error && <p class="error">{error}</p>}
      <ul class="device-list">
        {devs?.map((d) => (
          <li>
            <I.Devices size={20} />
            <div>
              <b class="mono">{d.id.slice(0, 12)}</b> {d.current && <span class="pill">this browser</span>}
              <span class="muted">Added {shortTime(d.issued)}</span>
            </div>
            <span class={cls('cert', d.verified ? 'ok' : 'bad')}>{d.verified ? 'certified' : 'not certified'}</span>
          </li>
        ))}
      </ul>
    </div>
  );
}

function TimerPicker(p: Props & { conv: string }) {
  const cv = p.state.convs.find((c) => c.id === p.conv);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState<number | null>(null);
  const [presets, setPresets] = useState<Array<{ seconds: number; label: string }>>([]);
  useEffect(() => {
    p.state.core.call('timerPresets').then(setPresets, (e) => setError(friendly(e)));
  }, []);
  const set = async (seconds: number) => {
    setBusy(seconds);
    try {
      await p.state.core.call('setTimer', { conv: p.conv, seconds });
      p.refresh();
      p.onClose();
    } catch (e) {
      setError(friendly(e));
      setBusy(null);
    }
  };
  return (
    <div>
      <Head title="Disappearing messages" onClose={p.onClose}>
        New messages in this conversation disappear from every device after the time you choose. Everyone in the conversation sees the change.
      </Head>
      <div class="timer-options">
        {presets.map(({ seconds: s, label }) => (
          <button class={cls('timer-option', (cv?.timer ?? 0) === s && 'active')} onClick={() => set(s)} disabled={busy !== null} data-testid={`timer-${s}`}>
            <span>{label[0].toUpperCase() + label.slice(1)}</span>
            {busy === s ? <span class="spinner small" /> : (cv?.timer ?? 0) === s && <I.Check size={16} />}
          </button>
        ))}
      </div>
      {error && <p class="error">{error}</p>}
    </div>
  );
}
