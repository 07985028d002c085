// A one-line terminal progress bar with rate and ETA; on a non-TTY stream, a line every 30 s.

export interface ProgressOptions {
  /** Unit for the rate, e.g. 'tok' (tokens/s) or 'seq'. */
  unit?: string;
  stream?: NodeJS.WriteStream;
  /** Print nothing at all. */
  silent?: boolean;
}

export class Progress {
  private readonly start = performance.now();
  private lastDraw = performance.now();
  private done = 0;
  private units = 0;
  private fields = '';
  private readonly stream: NodeJS.WriteStream;
  private readonly tty: boolean;

  constructor(readonly label: string, readonly total: number, private readonly opts: ProgressOptions = {}) {
    this.stream = opts.stream ?? process.stderr;
    this.tty = Boolean(this.stream.isTTY);
  }

  /** Advances by n steps that processed `units` units (tokens, sequences), with extra fields to show. */
  tick(n = 1, units = 0, fields: Record<string, number | string> = {}): void {
    this.done += n;
    this.units += units;
    this.fields = Object.entries(fields)
      .map(([k, v]) => `${k} ${typeof v === 'number' ? (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(3)) : v}`)
      .join('  ');
    const now = performance.now();
    if (this.opts.silent) return;
    if (this.tty && (now - this.lastDraw > 100 || this.done >= this.total)) {
      this.lastDraw = now;
      this.stream.write(`\r${this.line()}\x1b[K`);
    } else if (!this.tty && now - this.lastDraw > 30_000 && this.done < this.total) {
      // Logs (CI, nohup) get a line every 30 s instead of a redrawn bar.
      this.lastDraw = now;
      this.stream.write(`${this.line()}\n`);
    }
  }

  private line(): string {
    const elapsed = (performance.now() - this.start) / 1000;
    const frac = this.total > 0 ? Math.min(1, this.done / this.total) : 1;
    const width = 24;
    const bar = '█'.repeat(Math.round(frac * width)).padEnd(width, '·');
    const eta = frac > 0 ? (elapsed / frac) * (1 - frac) : 0;
    const rate = this.opts.unit && elapsed > 0 ? `  ${(this.units / elapsed).toFixed(0)} ${this.opts.unit}/s` : '';
    return `${this.label} ${bar} ${this.done}/${this.total}${rate}  ${fmtTime(elapsed)}<${fmtTime(eta)}${this.fields ? '  ' + this.fields : ''}`;
  }

  /** Ends the bar with a newline (on a non-TTY stream, prints the final line once). */
  finish(): number {
    const elapsed = (performance.now() - this.start) / 1000;
    if (!this.opts.silent) this.stream.write(this.tty ? `\r${this.line()}\x1b[K\n` : `${this.line()}\n`);
    return elapsed;
  }
}

export function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return '--:--';
  const m = Math.floor(s / 60);
  const h = Math.floor(m / 60);
  const ss = String(Math.floor(s % 60)).padStart(2, '0');
  return h > 0 ? `${h}:${String(m % 60).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}
