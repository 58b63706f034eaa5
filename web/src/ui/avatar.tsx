import { colorFor, initials } from '../util';
import { Users } from './icons';

export function Avatar({ name, size = 40, group }: { name: string; size?: number; group?: boolean }) {
  return (
    <div class="avatar" style={{ width: `${size}px`, height: `${size}px`, background: colorFor(name), fontSize: `${Math.round(size * 0.38)}px` }} aria-hidden="true">
      {group ? <Users size={size * 0.46} /> : initials(name)}
    </div>
  );
}
