import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { Core, friendly, type Account, type Conversation, type CoreEvent, type Message } from './core/bridge';
import { Onboarding } from './ui/onboarding';
import { Sidebar } from './ui/sidebar';
import { ConversationView, EmptyView } from './ui/conversation';
import { Details } from './ui/details';
import { Modal, type ModalState } from './ui/modals';
import { Logo } from './ui/icons';
import { CallView, Ringing } from './call/view';
import { onCall, type ActiveCall } from './call/sfu';
import { declineRing, joinRunning, startCall, watchRings, type Ring } from './call/ring';
import type { CallState } from './core/bridge';

export interface Upload {
  id: string;
  conv: string;
  name: string;
  done: number;
  total: number;
  preview?: string;
}

export interface AppState {
  core: Core;
  account: Account;
  convs: Conversation[];
  current: Conversation | null;
  messages: Message[];
  typing: Record<string, { user: string; until: number }>;
  uploads: Upload[];
  online: boolean;
}

export function App() {
  const [boot, setBoot] = useState<{ core: Core; account: Account | null } | null>(null);
  const [bootError, setBootError] = useState<string | null>(null);
  useEffect(() => {
    navigator.locks
      .request('hush-vault', { ifAvailable: true }, async (lock) => {
        if (!lock) {
          setBootError('Hush is open in another tab. Close it, then reload this one.');
          return;
        }
        try {
          setBoot(await Core.load());
        } catch (e) {
          setBootError(friendly(e));
          return;
        }
        // Hold the lock for the life of the page: one tab, one client.
        await new Promise(() => {});
      })
      .catch((e) => setBootError(friendly(e)));
  }, []);
  if (bootError) return <Splash text={bootError} error />;
  if (!boot) return <Splash text="Starting Hush…" />;
  if (!boot.account) return <Onboarding core={boot.core} onDone={(account) => setBoot({ core: boot.core, account })} />;
  return <Main core={boot.core} account={boot.account} />;
}

function Splash({ text, error }: { text: string; error?: boolean }) {
  return (
    <div class="splash" data-testid="splash">
      <Logo size={56} />
      <p class={error ? 'error' : 'muted'}>{text}</p>
      {!error && <div class="spinner" />}
    </div>
  );
}

function Main({ core, account }: { core: Core; account: Account }) {
  const [convs, setConvs] = useState<Conversation[]>([]);
  const [currentId, setCurrentId] = useState<string | null>(() => sessionStorage.getItem('hush.current'));
  const [messages, setMessages] = useState<Message[]>([]);
  const [typing, setTyping] = useState<AppState['typing']>({});
  const [uploads, setUploads] = useState<Upload[]>([]);
  const [online, setOnline] = useState(core.online);
  const [modal, setModal] = useState<ModalState | null>(null);
  const [details, setDetails] = useState(false);
  const [toast, setToast] = useState<string | null>(null);
  // The call in progress, in a new box at each change so that it redraws.
  const [callBox, setCallBox] = useState<{ call: ActiveCall | null }>({ call: null });
  const call = callBox.call;
  useEffect(
    () =>
      onCall((c, why) => {
        setCallBox({ call: c });
        if (why) notify(why);
      }),
    [],
  );
  // Incoming calls ring until accepted, declined, or the caller leaves.
  const [rings, setRings] = useState<Ring[]>([]);
  const currentRef = useRef(currentId);
  currentRef.current = currentId;
  // The open conversation's call going on, which the header offers to join.
  const [ongoing, setOngoing] = useState<CallState | null>(null);
  const checkOngoing = useCallback(
    (conv: string) => {
      if (conv !== currentRef.current) return;
      core
        .call('currentCall', { conv })
        .then((st) => conv === currentRef.current && setOngoing(st))
        .catch(() => setOngoing(null));
    },
    [core],
  );
  useEffect(() => watchRings(core, account, setRings, checkOngoing), [core, account, checkOngoing]);

  const notify = useCallback((text: string) => {
    setToast(text);
    setTimeout(() => setToast((t) => (t === text ? null : t)), 4000);
  }, []);

  // refresh reloads the list and the open conversation, at most once a
  // frame however many events arrive.
  const pending = useRef(false);
  const refresh = useCallback(() => {
    if (pending.current) return;
    pending.current = true;
    requestAnimationFrame(async () => {
      pending.current = false;
      try {
        setConvs(await core.call('conversations'));
        const id = currentRef.current;
        if (id) setMessages(await core.call('messages', { conv: id }));
      } catch (e) {
        console.warn('refresh', e);
      }
    });
  }, [core]);

  useEffect(() => {
    refresh();
    setOnline(core.online);
    return core.on((e: CoreEvent) => {
      switch (e.type) {
        case 'connection':
          setOnline(e.text === 'online');
          return;
        case 'typing':
          setTyping((t) => ({ ...t, [e.conversation]: { user: e.user, until: Date.now() + 5000 } }));
          setTimeout(() => setTyping((t) => ({ ...t })), 5100);
          return;
        case 'upload':
          setUploads((us) => us.map((u) => (u.id === e.upload ? { ...u, done: e.done, total: e.total } : u)));
          return;
        case 'warning':
          console.warn('hush:', e.text);
          return;
        case 'identity_changed':
          notify(`${e.user}'s safety number changed. Verify it before you send.`);
          break;
        case 'fatal':
          notify(e.text);
          return;
        case 'timer':
          if (e.user && e.user !== account.username) notify(e.text);
          break;
        case 'linked':
          notify('The new device is linked.');
          break;
        case 'link_failed':
          notify(`Linking failed: ${e.text}`);
          return;
        case 'message':
          if (e.message && !e.message.outgoing)
            setTyping((t) => {
              const n = { ...t };
              delete n[e.conversation];
              return n;
            });
          break;
      }
      refresh();
    });
  }, [core, refresh, notify, account.username]);

  const current = convs.find((c) => c.id === currentId) ?? null;
  // Whether the open conversation has a call going on: on opening it, and
  // when a call of ours ends.
  useEffect(() => {
    setOngoing(null);
    if (currentId && !call) checkOngoing(currentId);
  }, [currentId, call, checkOngoing]);

  const open = useCallback(
    async (id: string | null) => {
      setCurrentId(id);
      currentRef.current = id;
      if (id) sessionStorage.setItem('hush.current', id);
      else sessionStorage.removeItem('hush.current');
      setMessages(id ? await core.call('messages', { conv: id }).catch(() => []) : []);
    },
    [core],
  );

  // Read receipts: what is on screen in a focused window is read.
  useEffect(() => {
    if (!current || !messages.some((m) => !m.outgoing && !m.read && !m.deleted)) return;
    const send = () => {
      if (document.visibilityState === 'visible')
        core
          .call('markRead', { conv: current.id })
          .then(refresh)
          .catch(() => {});
    };
    send();
    document.addEventListener('visibilitychange', send);
    return () => document.removeEventListener('visibilitychange', send);
  }, [core, current?.id, messages, refresh]);

  const state: AppState = useMemo(
    () => ({ core, account, convs, current, messages, typing, uploads, online }),
    [core, account, convs, current, messages, typing, uploads, online],
  );

  const startUpload = (u: Upload) => setUploads((us) => [...us, u]);
  const endUpload = (id: string) =>
    setUploads((us) => {
      const u = us.find((x) => x.id === id);
      if (u?.preview) URL.revokeObjectURL(u.preview);
      return us.filter((x) => x.id !== id);
    });

  return (
    <div class={`app ${current ? 'has-current' : ''} ${details && current ? 'with-details' : ''}`}>
      <Sidebar state={state} onOpen={open} onModal={setModal} />
      {current ? (
        <ConversationView
          key={current.id}
          state={state}
          conv={current}
          onModal={setModal}
          onDetails={() => setDetails((d) => !d)}
          ongoing={!call && ongoing ? ongoing : null}
          onCall={call ? undefined : () => startCall(core, current.id, current.title).catch((e) => notify(friendly(e)))}
          onError={(e) => notify(friendly(e))}
          refresh={refresh}
          startUpload={startUpload}
          endUpload={endUpload}
          onBack={() => open(null)}
        />
      ) : (
        <EmptyView account={account} />
      )}
      {current && details && <Details state={state} conv={current} onClose={() => setDetails(false)} onModal={setModal} onError={(e) => notify(friendly(e))} refresh={refresh} />}
      {modal && (
        <Modal
          state={state}
          modal={modal}
          onClose={() => setModal(null)}
          onOpen={(id) => {
            setModal(null);
            refresh();
            open(id);
          }}
          onError={(e) => notify(friendly(e))}
          refresh={refresh}
        />
      )}
      {call && <CallView call={call} />}
      {!call &&
        rings.slice(0, 1).map((r) => {
          const title = convs.find((c) => c.id === r.conv)?.title ?? r.from;
          return (
            <Ringing
              key={r.callId}
              from={r.from}
              title={title}
              onAccept={() => joinRunning(core, r.conv, title, r.callId).catch((e) => notify(friendly(e)))}
              onDecline={() => declineRing(core, r).catch((e) => notify(friendly(e)))}
            />
          );
        })}
      {toast && (
        <div class="toast" role="status" data-testid="toast">
          {toast}
        </div>
      )}
    </div>
  );
}
