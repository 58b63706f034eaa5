import { useState } from 'preact/hooks';
import { friendly, type Account, type Core } from '../core/bridge';
import { Lock, Logo, Devices, ShieldCheck } from './icons';
import { cls } from '../util';

// Onboarding: create an account on this browser, or link this browser as
// another device of an account (with the code `hush link` shows).
export function Onboarding({ core, onDone }: { core: Core; onDone: (a: Account) => void }) {
  const [mode, setMode] = useState<'signup' | 'link'>('signup');
  const [username, setUsername] = useState('');
  const [code, setCode] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      onDone(mode === 'signup' ? await core.call('register', { username: username.trim() }) : await core.call('linkNew', { code: code.trim() }));
    } catch (err) {
      setError(friendly(err));
      setBusy(false);
    }
  };

  return (
    <div class="onboarding">
      <div class="onboarding-hero">
        <div class="brand">
          <Logo size={40} />
          <span>Hush</span>
        </div>
        <h1>Private conversations, on every device.</h1>
        <ul class="features">
          <li>
            <Lock size={18} /> Every chat, group and call is end-to-end encrypted, always.
          </li>
          <li>
            <ShieldCheck size={18} /> Verify contacts with a safety number or a QR code.
          </li>
          <li>
            <Devices size={18} /> Link this browser to the account on your other devices.
          </li>
        </ul>
      </div>
      <form class="card onboarding-card" onSubmit={submit} data-testid="onboarding">
        <div class="tabs" role="tablist">
          <button type="button" role="tab" class={cls('tab', mode === 'signup' && 'active')} onClick={() => setMode('signup')} data-testid="tab-signup">
            Create account
          </button>
          <button type="button" role="tab" class={cls('tab', mode === 'link' && 'active')} onClick={() => setMode('link')} data-testid="tab-link">
            Link a device
          </button>
        </div>
        {mode === 'signup' ? (
          <>
            <label class="field">
              <span>Choose a username</span>
              <div class="input-prefix">
                <span>@</span>
                <input
                  autoFocus
                  name="username"
                  autoComplete="username"
                  placeholder="alice"
                  value={username}
                  onInput={(e) => setUsername((e.target as HTMLInputElement).value)}
                  pattern="[A-Za-z0-9_.\-]{3,32}"
                  required
                  data-testid="username"
                />
              </div>
              <small>3 to 32 letters, digits, dots, dashes or underscores. Others find you by it.</small>
            </label>
            <button class="btn primary wide" disabled={busy || username.trim().length < 3} data-testid="signup">
              {busy ? 'Creating your keys…' : 'Create account'}
            </button>
          </>
        ) : (
          <>
            <label class="field">
              <span>Link code</span>
              <input
                autoFocus
                name="code"
                placeholder="a1b2c3.abcde-fghij-…"
                value={code}
                onInput={(e) => setCode((e.target as HTMLInputElement).value)}
                required
                class="mono"
                data-testid="link-code"
              />
              <small>
                On a device that has your account, run <code>hush link</code> (or open <b>Link a device</b> in the menu) and type the code it shows. This browser
                receives new messages from then on.
              </small>
            </label>
            <button class="btn primary wide" disabled={busy || code.trim().length < 10} data-testid="link">
              {busy ? 'Waiting for your other device…' : 'Link this browser'}
            </button>
          </>
        )}
        {error && (
          <p class="error" data-testid="error">
            {error}
          </p>
        )}
        <p class="fineprint">
          <Lock size={12} /> Your keys are made here and stay in this browser, sealed in its storage. The server only ever relays ciphertext.
        </p>
      </form>
    </div>
  );
}
