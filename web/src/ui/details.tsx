import { useEffect, useState } from 'preact/hooks';
import type { AppState } from '../app';
import type { Conversation, Member } from '../core/bridge';
import { timerLabel } from '../util';
import { Avatar } from './avatar';
import * as I from './icons';
import type { ModalState } from './modals';

// Details: who is in the conversation (each device checked against its
// owner's identity key), adding and removing members, and the timer.
export function Details(p: { state: AppState; conv: Conversation; onClose: () => void; onModal: (m: ModalState) => void; onError: (e: unknown) => void; refresh: () => void }) {
  const { state, conv } = p;
  const [members, setMembers] = useState<Member[]>([]);
  const [add, setAdd] = useState('');
  const [busy, setBusy] = useState(false);
  const load = () =>
    state.core
      .call('members', { conv: conv.id })
      .then(setMembers)
      .catch(() => setMembers([]));
  useEffect(() => {
    load();
  }, [conv.id, state.convs]);

  const users = new Map<string, Member[]>();
  for (const m of members) users.set(m.user, [...(users.get(m.user) ?? []), m]);
  const me = state.account.username;

  const addMembers = async (e: Event) => {
    e.preventDefault();
    const list = add
      .split(/[\s,]+/)
      .map((u) => u.replace(/^@/, ''))
      .filter(Boolean);
    if (!list.length) return;
    setBusy(true);
    try {
      await state.core.call('addMembers', { conv: conv.id, users: list });
      setAdd('');
      await load();
      p.refresh();
    } catch (err) {
      p.onError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <aside class="details" data-testid="details">
      <header>
        <h3>{conv.kind === 'group' ? 'Group info' : 'Chat info'}</h3>
        <button class="icon-btn" onClick={p.onClose} title="Close">
          <I.Close />
        </button>
      </header>
      <div class="details-hero">
        <Avatar name={conv.title} group={conv.kind === 'group'} size={72} />
        <h2>{conv.title}</h2>
        <span class="muted">
          {users.size} {users.size === 1 ? 'member' : 'members'} · {members.length} {members.length === 1 ? 'device' : 'devices'}
        </span>
      </div>
      <button class="details-row" onClick={() => p.onModal({ kind: 'timer', conv: conv.id })}>
        <I.Timer size={18} />
        <span>Disappearing messages</span>
        <b>{timerLabel(conv.timer ?? 0)}</b>
      </button>
      <h4>Members</h4>
      <ul class="members" data-testid="members">
        {[...users].map(([user, devs]) => (
          <li key={user}>
            <Avatar name={user} size={34} />
            <div class="member-text">
              <b>{user === me ? `${user} (you)` : user}</b>
              <span class="muted">
                {devs.length} {devs.length === 1 ? 'device' : 'devices'}
                {devs.every((d) => d.verified) ? ' · certified' : ' · unverified device'}
              </span>
            </div>
            {user !== me && (
              <button class="icon-btn small" title="Safety number" onClick={() => p.onModal({ kind: 'safety', user })}>
                <I.Shield size={16} />
              </button>
            )}
            {conv.kind === 'group' && user !== me && conv.active && (
              <button
                class="icon-btn small danger"
                title={`Remove ${user}`}
                onClick={() => {
                  if (confirm(`Remove ${user} from ${conv.title}?`))
                    state.core
                      .call('removeMember', { conv: conv.id, user })
                      .then(() => {
                        load();
                        p.refresh();
                      })
                      .catch(p.onError);
                }}
              >
                <I.Close size={16} />
              </button>
            )}
          </li>
        ))}
      </ul>
      {conv.kind === 'group' && conv.active && (
        <form class="add-member" onSubmit={addMembers}>
          <input placeholder="Add people by username" value={add} onInput={(e) => setAdd((e.target as HTMLInputElement).value)} data-testid="add-member" />
          <button class="btn" disabled={busy || !add.trim()}>
            <I.Plus size={16} /> Add
          </button>
        </form>
      )}
    </aside>
  );
}
