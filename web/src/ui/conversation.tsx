import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import type { AppState, Upload } from '../app';
import type { Account, CallState, Conversation, Core, Message } from '../core/bridge';
import { clock, cls, dayLabel, remaining, size, timerLabel } from '../util';
import { Avatar } from './avatar';
import * as I from './icons';
import type { ModalState } from './modals';

export const EMOJIS = ['👍', '❤️', '😂', '🎉', '😮', '😢', '🙏'];

export function EmptyView({ account }: { account: Account }) {
  return (
    <main class="empty-view">
      <div class="empty-card">
        <div class="empty-icon">
          <I.Lock size={30} />
        </div>
        <h2>Welcome, {account.username}</h2>
        <p>Pick a conversation, or start a new one. Messages, files, reactions and group names are encrypted on this device before they leave it.</p>
      </div>
    </main>
  );
}

interface Props {
  state: AppState;
  conv: Conversation;
  onModal: (m: ModalState) => void;
  onDetails: () => void;
  /** Starts a call in this conversation, or joins the one going on; absent while we are in one. */
  onCall?: () => void;
  /** The call going on in this conversation, which we are not in. */
  ongoing: CallState | null;
  onError: (e: unknown) => void;
  refresh: () => void;
  startUpload: (u: Upload) => void;
  endUpload: (id: string) => void;
  onBack: () => void;
}

export function ConversationView(p: Props) {
  const { state, conv } = p;
  const [replyTo, setReplyTo] = useState<Message | null>(null);
  const [editing, setEditing] = useState<Message | null>(null);
  const [now, setNow] = useState(Date.now());
  const hasTimers = state.messages.some((m) => m.expires);
  useEffect(() => {
    if (!hasTimers) return;
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, [hasTimers]);

  // Disappearing messages start their timers when first shown here.
  const unstarted = state.messages.filter((m) => m.timer && !m.expires && !m.outgoing).map((m) => m.id);
  const key = unstarted.join(',');
  useEffect(() => {
    if (!unstarted.length) return;
    const start = () => {
      if (document.visibilityState === 'visible') state.core.call('shown', { conv: conv.id, ids: unstarted }).then(p.refresh, () => {});
    };
    start();
    document.addEventListener('visibilitychange', start);
    return () => document.removeEventListener('visibilitychange', start);
  }, [key]);

  const typing = state.typing[conv.id];
  const isTyping = typing && typing.until > Date.now();
  const byId = new Map(state.messages.map((m) => [m.id, m]));
  const visible = state.messages.filter((m) => !m.expires || Date.parse(m.expires) > Date.now());
  const uploads = state.uploads.filter((u) => u.conv === conv.id);

  return (
    <main class="conversation" data-testid="conversation-view" data-conv={conv.id}>
      <header class="conv-head">
        <button class="icon-btn back" onClick={p.onBack} title="Back">
          ‹
        </button>
        <Avatar name={conv.title} group={conv.kind === 'group'} size={40} />
        <div class="conv-head-text">
          <h2 data-testid="conv-title">{conv.title}</h2>
          <span class="subtitle">
            {isTyping ? (
              <i class="typing-text" data-testid="typing">
                {conv.kind === 'group' ? `${typing.user} is typing…` : 'typing…'}
              </i>
            ) : !conv.active ? (
              'You are no longer in this conversation'
            ) : (
              <>
                <I.Lock size={12} /> End-to-end encrypted
                {!!conv.timer && (
                  <span class="timer-pill" data-testid="timer-pill">
                    <I.Timer size={12} /> {timerLabel(conv.timer)}
                  </span>
                )}
              </>
            )}
          </span>
        </div>
        <div class="head-actions">
          {conv.active &&
            (p.ongoing ? (
              <button class="join-call" title="Join the call" disabled={!p.onCall || !state.online} onClick={p.onCall} data-testid="join-call">
                <I.Video size={16} /> Join call · {Object.keys(p.ongoing.devices).length}
              </button>
            ) : (
              <button class="icon-btn" title="Call" disabled={!p.onCall || !state.online} onClick={p.onCall} data-testid="call-button">
                <I.Video />
              </button>
            ))}
          <button class="icon-btn" title="Disappearing messages" onClick={() => p.onModal({ kind: 'timer', conv: conv.id })} data-testid="timer-button">
            <I.Timer />
          </button>
          {conv.kind === 'direct' && conv.peer && (
            <button class="icon-btn" title="Verify safety number" onClick={() => p.onModal({ kind: 'safety', user: conv.peer! })} data-testid="verify-button">
              <I.Shield />
            </button>
          )}
          <button class="icon-btn" title="Details" onClick={p.onDetails} data-testid="details-button">
            <I.Info />
          </button>
        </div>
      </header>
      <MessageList
        core={state.core}
        conv={conv}
        messages={visible}
        byId={byId}
        now={now}
        uploads={uploads}
        onReply={(m) => {
          setEditing(null);
          setReplyTo(m);
        }}
        onEdit={(m) => {
          setReplyTo(null);
          setEditing(m);
        }}
        onError={p.onError}
        refresh={p.refresh}
      />
      {conv.active ? (
        <Composer
          {...p}
          replyTo={replyTo}
          editing={editing}
          clear={() => {
            setReplyTo(null);
            setEditing(null);
          }}
        />
      ) : (
        <div class="composer disabled">You can't send messages to this conversation.</div>
      )}
    </main>
  );
}

function MessageList(p: {
  core: Core;
  conv: Conversation;
  messages: Message[];
  byId: Map<string, Message>;
  now: number;
  uploads: Upload[];
  onReply: (m: Message) => void;
  onEdit: (m: Message) => void;
  onError: (e: unknown) => void;
  refresh: () => void;
}) {
  const ref = useRef<HTMLDivElement>(null);
  const stick = useRef(true);
  const count = p.messages.length + p.uploads.length;
  useLayoutEffect(() => {
    const el = ref.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, [count, p.messages]);
  const onScroll = () => {
    const el = ref.current!;
    stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 80;
  };
  let lastDay = '';
  let lastSender = '';
  return (
    <div class="messages" ref={ref} onScroll={onScroll} data-testid="messages">
      <div class="e2e-note">
        <I.Lock size={12} /> Messages and calls are end-to-end encrypted. Only the people in this conversation can read them.
      </div>
      {p.messages.map((m) => {
        const day = dayLabel(m.time);
        const showDay = day !== lastDay;
        lastDay = day;
        const first = showDay || lastSender !== m.sender;
        lastSender = m.sender;
        return (
          <>
            {showDay && <div class="day">{day}</div>}
            <Bubble key={m.id} {...p} m={m} first={first} />
          </>
        );
      })}
      {p.uploads.map((u) => (
        <div class="row out" key={u.id} data-testid="upload">
          <div class="bubble out uploading">
            {u.preview ? <img class="att-image" src={u.preview} alt="" /> : <FileCard name={u.name} size={u.total} />}
            <div class="progress">
              <div style={{ width: `${u.total ? Math.round((100 * u.done) / u.total) : 0}%` }} />
            </div>
            <div class="meta">{u.done >= u.total && u.total > 0 ? 'Sending…' : `Encrypting and uploading… ${u.total ? Math.round((100 * u.done) / u.total) : 0}%`}</div>
          </div>
        </div>
      ))}
    </div>
  );
}

function Bubble(p: {
  core: Core;
  conv: Conversation;
  m: Message;
  first: boolean;
  byId: Map<string, Message>;
  now: number;
  onReply: (m: Message) => void;
  onEdit: (m: Message) => void;
  onError: (e: unknown) => void;
  refresh: () => void;
}) {
  const { m } = p;
  const [picker, setPicker] = useState(false);
  const quoted = m.reply_to ? p.byId.get(m.reply_to) : undefined;
  const group = p.conv.kind === 'group';
  const reactions = new Map<string, string[]>();
  for (const r of m.reactions ?? []) reactions.set(r.emoji, [...(reactions.get(r.emoji) ?? []), r.user]);
  const react = (emoji: string) => {
    setPicker(false);
    p.core.call('react', { id: m.id, emoji }).then(p.refresh, p.onError);
  };
  const readers = (m.read_by ?? []).length;
  const left = m.expires ? Date.parse(m.expires) - Date.now() : 0;

  return (
    <div class={cls('row', m.outgoing ? 'out' : 'in', p.first && 'first')} data-testid="message" data-id={m.id} data-sender={m.sender}>
      {!m.outgoing && group && (p.first ? <Avatar name={m.sender} size={30} /> : <div class="avatar-space" />)}
      <div class={cls('bubble', m.outgoing ? 'out' : 'in', m.deleted && 'deleted', m.failed && 'failed')}>
        {!m.outgoing && group && p.first && <div class="sender">{m.sender}</div>}
        {quoted && (
          <div class="quote" data-testid="quote">
            <b>{quoted.outgoing ? 'You' : quoted.sender}</b>
            <span>{quoted.deleted ? 'Message deleted' : quoted.type === 'attachment' ? `📎 ${quoted.attachment?.name ?? 'Attachment'}` : quoted.text}</span>
          </div>
        )}
        {m.deleted ? (
          <span class="text deleted-text" data-testid="text">
            <I.Trash size={13} /> This message was deleted
          </span>
        ) : (
          <>
            {m.attachment && <AttachmentView core={p.core} m={m} onError={p.onError} />}
            {m.text && (
              <span class="text" data-testid="text">
                {m.text}
              </span>
            )}
          </>
        )}
        <div class="meta">
          {m.expires ? (
            <span class="expires" data-testid="expires" title={`Disappears at ${new Date(m.expires).toLocaleTimeString()}`}>
              <I.Timer size={11} /> {remaining(left)}
            </span>
          ) : (
            !!m.timer && (
              <span class="expires" title="Disappears after it is read">
                <I.Timer size={11} /> {remaining(m.timer * 1000)}
              </span>
            )
          )}
          {m.edited && !m.deleted && <span>edited</span>}
          <span>{clock(m.time)}</span>
          {m.outgoing &&
            (m.failed ? (
              <span class="failed-text">Not sent</span>
            ) : m.pending ? (
              <span class="tick" title="Sending">
                ◷
              </span>
            ) : readers > 0 ? (
              <span class="tick read" title={`Read by ${m.read_by!.join(', ')}`} data-testid="read">
                <I.CheckCheck size={14} />
              </span>
            ) : (
              <span class="tick" title="Delivered to the server">
                <I.Check size={14} />
              </span>
            ))}
        </div>
        {reactions.size > 0 && (
          <div class="reactions">
            {[...reactions].map(([emoji, users]) => (
              <button class="chip" title={users.join(', ')} onClick={() => react(emoji)} data-testid="reaction">
                {emoji}
                {users.length > 1 && <span>{users.length}</span>}
              </button>
            ))}
          </div>
        )}
      </div>
      {!m.deleted && (
        <div class="actions">
          <button class="icon-btn small" title="React" onClick={() => setPicker((x) => !x)} data-testid="react-button">
            <I.Smile size={16} />
          </button>
          <button class="icon-btn small" title="Reply" onClick={() => p.onReply(m)} data-testid="reply-button">
            <I.Reply size={16} />
          </button>
          {m.outgoing && m.type === 'text' && (
            <button class="icon-btn small" title="Edit" onClick={() => p.onEdit(m)} data-testid="edit-button">
              <I.Edit size={16} />
            </button>
          )}
          {m.outgoing && (
            <button
              class="icon-btn small"
              title="Delete for everyone"
              onClick={() => {
                if (confirm('Delete this message for everyone?')) p.core.call('delete', { id: m.id }).then(p.refresh, p.onError);
              }}
              data-testid="delete-button"
            >
              <I.Trash size={16} />
            </button>
          )}
          {picker && (
            <div class="picker" data-testid="emoji-picker">
              {EMOJIS.map((e) => (
                <button onClick={() => react(e)} data-emoji={e}>
                  {e}
                </button>
              ))}
            </div>
          )}
        </div>
      )}
    </div>
  );
}

const blobCache = new Map<string, Promise<string>>();

function AttachmentView({ core, m, onError }: { core: Core; m: Message; onError: (e: unknown) => void }) {
  const a = m.attachment!;
  const image = a.content_type?.startsWith('image/') && a.size < 20 << 20;
  const [url, setUrl] = useState<string | null>(null);
  useEffect(() => {
    if (!image || m.pending) return;
    let p = blobCache.get(m.id);
    if (!p) {
      p = core.download(m.id).then((b) => URL.createObjectURL(new Blob([b as Uint8Array<ArrayBuffer>], { type: a.content_type })));
      blobCache.set(m.id, p);
      p.catch(() => blobCache.delete(m.id));
    }
    p.then(setUrl, () => {});
  }, [m.id, m.pending]);
  const save = async () => {
    try {
      const b = await core.download(m.id);
      const link = document.createElement('a');
      link.href = URL.createObjectURL(new Blob([b as Uint8Array<ArrayBuffer>], { type: a.content_type || 'application/octet-stream' }));
      link.download = a.name || 'attachment';
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    } catch (e) {
      onError(e);
    }
  };
  if (image)
    return url ? (
      <img class="att-image" src={url} alt={a.name} onClick={save} data-testid="image" />
    ) : (
      <div class="att-image placeholder">
        <div class="spinner small" />
      </div>
    );
  return <FileCard name={a.name || 'attachment'} size={a.size} onClick={save} />;
}

function FileCard({ name, size: n, onClick }: { name: string; size: number; onClick?: () => void }) {
  return (
    <button class="file-card" onClick={onClick} disabled={!onClick} data-testid="file">
      <div class="file-icon">
        <I.File size={20} />
      </div>
      <div class="file-text">
        <b>{name}</b>
        <span>{size(n)}</span>
      </div>
      {onClick && <I.Download size={18} />}
    </button>
  );
}

function Composer(p: Props & { replyTo: Message | null; editing: Message | null; clear: () => void }) {
  const { state, conv } = p;
  const [text, setText] = useState('');
  const [sending, setSending] = useState(false);
  const input = useRef<HTMLTextAreaElement>(null);
  const file = useRef<HTMLInputElement>(null);
  const lastTyping = useRef(0);
  useEffect(() => {
    if (p.editing) setText(p.editing.text ?? '');
    input.current?.focus();
  }, [p.editing, p.replyTo]);
  useEffect(() => {
    const el = input.current;
    if (el) {
      el.style.height = 'auto';
      el.style.height = Math.min(el.scrollHeight, 160) + 'px';
    }
  }, [text]);

  const send = async () => {
    const t = text.trim();
    if (!t || sending) return;
    setSending(true);
    try {
      if (p.editing) await state.core.call('edit', { id: p.editing.id, text: t });
      else await state.core.call('send', { conv: conv.id, text: t, replyTo: p.replyTo?.id });
      setText('');
      p.clear();
      p.refresh();
    } catch (e) {
      p.onError(e);
    } finally {
      setSending(false);
      input.current?.focus();
    }
  };

  const attach = async (f: File) => {
    const id = crypto.randomUUID();
    const preview = f.type.startsWith('image/') ? URL.createObjectURL(f) : undefined;
    p.startUpload({ id, conv: conv.id, name: f.name, done: 0, total: f.size, preview });
    try {
      const bytes = new Uint8Array(await f.arrayBuffer());
      await state.core.sendAttachment(conv.id, { name: f.name, type: f.type, bytes }, '', id);
      p.refresh();
    } catch (e) {
      p.onError(e);
    } finally {
      p.endUpload(id);
    }
  };

  return (
    <div class="composer-wrap">
      {(p.replyTo || p.editing) && (
        <div class="composer-context" data-testid="composer-context">
          {p.editing ? <I.Edit size={16} /> : <I.Reply size={16} />}
          <div>
            <b>{p.editing ? 'Edit message' : `Reply to ${p.replyTo!.outgoing ? 'yourself' : p.replyTo!.sender}`}</b>
            <span>{(p.editing ?? p.replyTo)!.text ?? (p.editing ?? p.replyTo)!.attachment?.name}</span>
          </div>
          <button
            class="icon-btn small"
            onClick={() => {
              p.clear();
              setText('');
            }}
            title="Cancel"
          >
            <I.Close size={16} />
          </button>
        </div>
      )}
      <form
        class="composer"
        onSubmit={(e) => {
          e.preventDefault();
          send();
        }}
      >
        <button type="button" class="icon-btn" title="Attach a file" onClick={() => file.current?.click()} data-testid="attach">
          <I.Clip />
        </button>
        <input
          type="file"
          ref={file}
          hidden
          data-testid="file-input"
          onChange={(e) => {
            const f = (e.target as HTMLInputElement).files?.[0];
            if (f) attach(f);
            (e.target as HTMLInputElement).value = '';
          }}
        />
        <textarea
          ref={input}
          rows={1}
          placeholder={p.editing ? 'Edit your message' : 'Write a message'}
          value={text}
          data-testid="composer"
          onInput={(e) => {
            setText((e.target as HTMLTextAreaElement).value);
            if (Date.now() - lastTyping.current > 3000) {
              lastTyping.current = Date.now();
              state.core.call('typing', { conv: conv.id }).catch(() => {});
            }
          }}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && !e.shiftKey) {
              e.preventDefault();
              send();
            } else if (e.key === 'Escape') {
              p.clear();
            }
          }}
        />
        <button class="send-btn" disabled={!text.trim() || sending} title="Send" data-testid="send">
          {p.editing ? <I.Check /> : <I.Send />}
        </button>
      </form>
    </div>
  );
}
