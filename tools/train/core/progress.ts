/**
 * Training progress: a cli-progress bar on a terminal, plain lines otherwise (logs, CI, tests). Each update
 * shows the step, the mean loss since the last update, the family's own figures (a validation PSNR when there are
 * references), the seconds per step and the ETA. A figure that is not a finite number is never printed as one:
 * it shows as `n/a` with the reason beside it.
 */
import cliProgress from 'cli-progress';

export type Field = number | string | { value: number; digits?: number; unit?: string; why?: string };

export interface Progress {
  /**
   * After step `done` (1-based count of steps done), with that step's loss. The loss and the plain-number fields
   * shown are their means over the steps since the last line (plain lines) or over the last `every` steps (bar).
   */
  update(done: number, loss: number, fields?: Record<string, Field>): void;
  /** A line above the bar (or a plain line). */
  log(line: string): void;
  stop(): void;
}

export interface ProgressOptions {
  label: string;
  total: number;
  /** Step the run starts at (after a resume): the rate and ETA count only this run's steps. */
  start: number;
  /** Plain-line mode: print every this many steps (and at the last). */
  every?: number;
  /** Force the bar (true) or plain lines (false); default: a bar when `stream` is a terminal. */
  tty?: boolean;
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Plain lines go here (default: a line on `stream`). */
  print?: (line: string) => void;
  now?: () => number;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return 'n/a';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(s % 60).padStart(2, '0')}s`;
}

/** A number for humans; a non-finite one becomes `n/a (why)`. */
export function formatFigure(value: number, digits = 4, why = 'not a finite number'): string {
  if (!Number.isFinite(value)) return `n/a (${why}: ${String(value)})`;
  const abs = Math.abs(value);
  return abs !== 0 && (abs < 1e-3 || abs >= 1e5)
    ? value.toExponential(digits - 1)
    : value.toPrecision(digits);
}

function formatField(name: string, field: Field): string {
  if (typeof field === 'string') return `${name} ${field}`;
  if (typeof field === 'number') return `${name} ${formatFigure(field)}`;
  const text = formatFigure(field.value, field.digits, field.why);
  return `${name} ${text}${Number.isFinite(field.value) && field.unit ? ` ${field.unit}` : ''}`;
}

export function createProgress(options: ProgressOptions): Progress {
  const stream = options.stream ?? process.stderr;
  const tty = options.tty ?? Boolean(stream.isTTY);
  const now = options.now ?? (() => performance.now());
  const started = now();
  const every = options.every ?? (options.total - options.start <= 200 ? 10 : 50);
  const print = options.print ?? ((line: string) => stream.write(`${line}\n`));
  const timing = (done: number) => {
    const perStep = (now() - started) / 1000 / Math.max(1, done - options.start);
    return { perStep, eta: perStep * (options.total - done) };
  };
  // Recent values of the loss and of the plain-number fields, averaged for display.
  let recent: Record<string, number>[] = [];
  const record = (loss: number, fields: Record<string, Field>) => {
    const row: Record<string, number> = { loss };
    for (const [name, field] of Object.entries(fields)) if (typeof field === 'number') row[name] = field;
    recent.push(row);
    if (recent.length > every) recent.shift();
  };
  const mean = (name: string) => recent.reduce((s, r) => s + r[name], 0) / recent.length;
  const describe = (done: number, fields: Record<string, Field>) => {
    const { perStep, eta } = timing(done);
    const parts = [formatField('loss', { value: mean('loss'), digits: 5, why: 'diverged' })];
    for (const [name, field] of Object.entries(fields))
      parts.push(formatField(name, typeof field === 'number' ? mean(name) : field));
    return { text: parts.join(' '), perStep: `${perStep.toFixed(3)} s/step`, eta: formatDuration(eta) };
  };

  if (!tty) {
    return {
      update(done, loss, fields = {}) {
        record(loss, fields);
        if (done % every !== 0 && done !== options.total) return;
        const d = describe(done, fields);
        recent = [];
        print(`${options.label} step ${done}/${options.total} ${d.text} ${d.perStep} ETA ${d.eta}`);
      },
      log: print,
      stop() {},
    };
  }
  const bars = new cliProgress.MultiBar(
    {
      stream,
      // ETA first: a narrow terminal truncates the end of the line.
      format: `${options.label} [{bar}] {value}/{total} ETA {remaining} {perStep} {text}`,
      hideCursor: true,
      clearOnComplete: false,
      barsize: 16,
    },
    cliProgress.Presets.shades_classic,
  );
  const bar = bars.create(options.total, options.start, { text: '', perStep: '', remaining: '' });
  let stopped = false;
  return {
    update(done, loss, fields = {}) {
      record(loss, fields);
      const d = describe(done, fields);
      // Not `eta`: cli-progress has its own token of that name (seconds, from its own rate estimate).
      bar.update(done, { text: d.text, perStep: d.perStep, remaining: d.eta });
    },
    log(line) {
      if (stopped) stream.write(`${line}\n`);
      else bars.log(`${line}\n`);
    },
    stop() {
      if (stopped) return;
      stopped = true;
      bars.stop();
      // Lines logged since the last redraw are still in cli-progress's buffer: write them below the bar.
      const pending = (bars as unknown as { loggingBuffer?: string[] }).loggingBuffer ?? [];
      for (const line of pending.splice(0)) stream.write(line);
    },
  };
}
