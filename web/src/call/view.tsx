import { useEffect, useRef, useState } from 'preact/hooks';
import { receivedStats, type ActiveCall } from './sfu';
import type { MediaStats } from './secure';
import { Avatar } from '../ui/avatar';
import * as I from '../ui/icons';

function Video({ stream, muted, class: cls }: { stream: MediaStream; muted?: boolean; class: string }) {
  const ref = useRef<HTMLVideoElement>(null);
  useEffect(() => {
    if (ref.current) ref.current.srcObject = stream;
  }, [stream]);
  return <video ref={ref} class={cls} autoPlay playsInline muted={muted} />;
}

interface Shown extends MediaStats {
  framesDecoded: number;
  audioPackets: number;
  remotes: Array<[string, MediaStream]>;
}

// The call screen: the others' video (one tile each), ours in a corner,
// and what protects it: SFrame under the conversation's MLS epoch. The
// counts come from the transform worker (frames encrypted, decrypted,
// rejected) and from the PeerConnection (video frames decoded); they are
// on data- attributes for the end-to-end tests too.
export function CallView({ call }: { call: ActiveCall }) {
  const [shown, setShown] = useState<Shown>({ ...call.media.stats, framesDecoded: 0, audioPackets: 0, remotes: [] });
  const [secs, setSecs] = useState(0);
  const [muted, setMutedState] = useState(call.muted);
  const toggle = (kind: 'audio' | 'video') => {
    call.setMuted(kind, !call.muted[kind]);
    setMutedState(call.muted);
  };
  useEffect(() => {
    let live = true;
    const tick = async () => {
      const r = await receivedStats(call.pc).catch(() => ({ framesDecoded: 0, audioPackets: 0 }));
      if (!live) return;
      setShown({ ...call.media.stats, ...r, remotes: [...call.remotes.entries()] });
    };
    void tick();
    const t = setInterval(() => {
      void tick();
      setSecs((s) => s + 1);
    }, 1000);
    return () => {
      live = false;
      clearInterval(t);
    };
  }, [call]);
  const mm = String(Math.floor(secs / 60)).padStart(2, '0');
  const ss = String(secs % 60).padStart(2, '0');
  const remotes = shown.remotes.filter(([, s]) => s.getVideoTracks().length > 0);
  const status = call.state === 'reconnecting' ? 'Reconnecting…' : shown.decrypted > 0 ? `${mm}:${ss}` : shown.remotes.length ? 'Connecting…' : call.pc ? 'Waiting for the others to join…' : 'Joining…';
  return (
    <div class="call" data-testid="call" data-call={call.callId} data-participants={shown.remotes.length}>
      {remotes.length ? (
        <div class={`call-grid n${Math.min(remotes.length, 4)}`}>
          {remotes.map(([device, s]) => (
            <Video key={device} stream={s} class="call-remote" />
          ))}
        </div>
      ) : (
        <div class="call-remote placeholder">
          <Avatar name={call.title} size={120} />
        </div>
      )}
      {/* Audio-only participants are heard too. */}
      {shown.remotes
        .filter(([, s]) => s.getVideoTracks().length === 0)
        .map(([device, s]) => (
          <Audio key={device} stream={s} />
        ))}
      <Video stream={call.local} muted class="call-local" />
      <div class="call-top">
        <h2>{call.title}</h2>
        <span data-testid="call-status">{status}</span>
      </div>
      <div class="call-bottom">
        <div
          class="call-secure"
          data-testid="call-secure"
          data-encrypted={shown.encrypted}
          data-encrypted-audio={shown.encryptedAudio}
          data-encrypted-video={shown.encryptedVideo}
          data-decrypted={shown.decrypted}
          data-failed={shown.failed}
          data-replayed={shown.replayed}
          data-epoch={shown.epoch}
          data-frames-decoded={shown.framesDecoded}
          data-audio-packets={shown.audioPackets}
          data-error={shown.error}
        >
          <I.Lock size={14} /> SFrame end-to-end encryption · MLS epoch {shown.epoch >= 0 ? shown.epoch : '…'}
          <span class="call-counts">
            {shown.encrypted} sent · {shown.decrypted} received{shown.failed ? ` · ${shown.failed} rejected` : ''}
          </span>
        </div>
        <div class="call-controls">
          <button
            class={`call-toggle${muted.audio ? ' off' : ''}`}
            onClick={() => toggle('audio')}
            title={muted.audio ? 'Unmute' : 'Mute'}
            aria-pressed={muted.audio}
            data-testid="mute-audio"
          >
            {muted.audio ? <I.MicOff size={22} /> : <I.Mic size={22} />}
          </button>
          <button
            class={`call-toggle${muted.video ? ' off' : ''}`}
            onClick={() => toggle('video')}
            title={muted.video ? 'Turn camera on' : 'Turn camera off'}
            aria-pressed={muted.video}
            data-testid="mute-video"
          >
            {muted.video ? <I.VideoOff size={22} /> : <I.Video size={22} />}
          </button>
          <button class="hangup" onClick={() => call.hangup()} title="Hang up" data-testid="hangup">
            <I.Phone size={24} />
          </button>
        </div>
      </div>
    </div>
  );
}

function Audio({ stream }: { stream: MediaStream }) {
  const ref = useRef<HTMLAudioElement>(null);
  useEffect(() => {
    if (ref.current) ref.current.srcObject = stream;
  }, [stream]);
  return <audio ref={ref} autoPlay />;
}

/** An incoming call: who calls, in which conversation, and the choice. */
export function Ringing({ title, from, onAccept, onDecline }: { title: string; from: string; onAccept: () => void; onDecline: () => void }) {
  return (
    <div class="ringing" role="dialog" aria-label="Incoming call" data-testid="ringing">
      <div class="ringing-pulse">
        <Avatar name={from} size={56} />
      </div>
      <div class="ringing-text">
        <strong>{from}</strong>
        <span>{title === from ? 'is calling you' : `is calling ${title}`}</span>
      </div>
      <button class="ringing-decline" onClick={onDecline} title="Decline" data-testid="decline-call">
        <I.Phone size={20} />
      </button>
      <button class="ringing-accept" onClick={onAccept} title="Accept" data-testid="accept-call">
        <I.Video size={20} />
      </button>
    </div>
  );
}
