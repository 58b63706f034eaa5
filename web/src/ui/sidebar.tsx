import { useState } from 'preact/hooks';
import type { AppState } from '../app';
import type { Conversation, Message } from '../core/bridge';
import { cls, shortTime } from '../util';
import { Avatar } from './avatar';
import { Edit, Link, Search, ShieldCheck, Timer, Users } from './icons';
import type { ModalState } from './modals';

function previewText(m: Message | undefined, me: string, group: boolean): string {
  if (!m) return 'No messages yet';
  const who = m.outgoing ? 'You: ' : group ? `${m.sender}: ` : '';
  if (m.deleted) return who + 'Message deleted';
  if (m.type === 'attachment') return who + (m.attachment?.content_type?.startsWith('image/') ? '📷 Photo' : `📎 ${m.attachment?.name ?? 'File'}`) + (m.text ? ` · ${m.text}` : '');
  return who + (m.text ?? '');
  void me;
}

export function Sidebar({ state, onOpen, onModal }: { state: AppState; onOpen: (id: string) => void; onModal: (m: ModalState) => void }) {
  const [filter, setFilter] = useState('');
  const [menu, setMenu] = useState(false);
  const list = state.convs.filter((c) => c.title.toLowerCase().includes(filter.trim().toLowerCase()));
  const me = state.account.username;
  return (
    <aside class="sidebar" data-testid="sidebar">
      <header class="sidebar-head">
        <button class="me" onClick={() => setMenu((m) => !m)} data-testid="me" aria-haspopup="menu">
          <Avatar name={me} size={36} />
          <div class="me-text">
            <b>{me}</b>
            <span class={cls('status', state.online ? 'on' : 'off')}>{state.online ? 'Connected' : 'Connecting…'}</span>
          </div>
        </button>
        <div class="head-actions">
          <button class="icon-btn" title="New chat" onClick={() => onModal({ kind: 'new-chat' })} data-testid="new-chat">
            <Edit />
          </button>
          <button class="icon-btn" title="New group" onClick={() => onModal({ kind: 'new-group' })} data-testid="new-group">
            <Users />
          </button>
        </div>
        {menu && (
          <div class="menu" role="menu" onClick={() => setMenu(false)}>
            <button role="menuitem" onClick={() => onModal({ kind: 'link-device' })} data-testid="menu-link">
              <Link size={16} /> Link a device
            </button>
            <button role="menuitem" onClick={() => onModal({ kind: 'devices' })} data-testid="menu-devices">
              <ShieldCheck size={16} /> Your devices
            </button>
          </div>
        )}
      </header>
      <div class="search">
        <Search size={16} />
        <input placeholder="Search" value={filter} onInput={(e) => setFilter((e.target as HTMLInputElement).value)} />
      </div>
      <nav class="conv-list" data-testid="conversations">
        {list.length === 0 && (
          <div class="conv-empty">
            <p>No conversations yet.</p>
            <button class="btn primary" onClick={() => onModal({ kind: 'new-chat' })}>
              Start a chat
            </button>
          </div>
        )}
        {list.map((c: Conversation) => (
          <button
            key={c.id}
            class={cls('conv-item', state.current?.id === c.id && 'active', c.unread > 0 && 'unread', !c.active && 'inactive')}
            onClick={() => onOpen(c.id)}
            data-testid="conversation"
            data-title={c.title}
          >
            <Avatar name={c.title} group={c.kind === 'group'} size={46} />
            <div class="conv-main">
              <div class="conv-row">
                <span class="conv-title">{c.title}</span>
                <span class="conv-time">{shortTime(c.preview?.time ?? c.last)}</span>
              </div>
              <div class="conv-row">
                <span class="conv-preview">
                  {state.typing[c.id] && state.typing[c.id].until > Date.now() ? <i class="typing-text">typing…</i> : previewText(c.preview, me, c.kind === 'group')}
                </span>
                {!!c.timer && <Timer size={14} class="conv-timer" />}
                {c.unread > 0 && (
                  <span class="badge" data-testid="unread">
                    {c.unread}
                  </span>
                )}
              </div>
            </div>
          </button>
        ))}
      </nav>
    </aside>
  );
}
