import { useEffect, useRef, useState } from 'preact/hooks';
import type { ActiveCall } from './direct';
import { Avatar } from '../ui/avatar';
import * as I from '../ui/icons';

function Video({ stream, muted, class: cls }: { stream: MediaStream; muted?: boolean; class: string }) {
  const ref = useRef<HTMLVideoElement>(null);
  useEffect(() => {
    if (ref.current) ref.current.srcObject = stream;
  }, [stream]);
  return <video ref={ref} class={cls} autoPlay playsInline muted={muted} />;
}

// The call screen: the other side's video, ours in a corner, and what
// protects it: SFrame under the conversation's MLS epoch.
export function CallView({ call }: { call: ActiveCall }) {
  const [stats, setStats] = useState(call.media.stats);
  const [secs, setSecs] = useState(0);
  const [hasVideo, setHasVideo] = useState(false);
  useEffect(() => {
    const t = setInterval(() => {
      setStats({ ...call.media.stats });
      setSecs((s) => s + 1);
      setHasVideo(call.remote.getVideoTracks().length > 0);
    }, 1000);
    return () => clearInterval(t);
  }, [call]);
  const mm = String(Math.floor(secs / 60)).padStart(2, '0');
  const ss = String(secs % 60).padStart(2, '0');
  return (
    <div class="call" data-testid="call">
      {hasVideo ? <Video stream={call.remote} class="call-remote" /> : <div class="call-remote placeholder"><Avatar name={call.title} size={120} /></div>}
      <Video stream={call.local} muted class="call-local" />
      <div class="call-top">
        <h2>{call.title}</h2>
        <span>
          {stats.decrypted > 0 ? `${mm}:${ss}` : 'Connecting…'}
        </span>
      </div>
      <div class="call-bottom">
        <div class="call-secure" data-testid="call-secure">
          <I.Lock size={14} /> SFrame end-to-end encryption · MLS epoch {stats.epoch >= 0 ? stats.epoch : '…'}
          <span class="call-counts">
            {stats.encrypted} sent · {stats.decrypted} received{stats.failed ? ` · ${stats.failed} rejected` : ''}
          </span>
        </div>
        <button class="hangup" onClick={() => call.hangup()} title="Hang up" data-testid="hangup">
          <I.Phone size={24} />
        </button>
      </div>
    </div>
  );
}
