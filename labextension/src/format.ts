/** Plain-text views of the pool status shared by the status bar and the panel. */
import { IEntryStatus, IPoolStatus } from './api';

/** Memory use at or above this share of the budget is shown as a warning. */
export const WARN_RATIO = 0.9;

export function formatBytes(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const digits = unit === 0 || value >= 10 ? 0 : 1;
  return `${value.toFixed(digits)} ${units[unit]}`;
}

export function formatPercent(ratio: number): string {
  return `${Math.round(ratio * 100)}%`;
}

/** "12 MB / 8 GB", or "12 MB" without a budget. */
export function formatMemory(status: IPoolStatus): string {
  const { active, budget } = status.memory;
  return budget ? `${formatBytes(active)} / ${formatBytes(budget)}` : formatBytes(active);
}

export function memoryRatio(status: IPoolStatus): number | null {
  const { active, budget } = status.memory;
  return budget ? active / budget : null;
}

export type Level = 'ok' | 'warn' | 'error';

export function statusLevel(status: IPoolStatus | null): Level {
  if (!status || status.state === 'failed' || status.state === 'stopped') {
    return 'error';
  }
  const ratio = memoryRatio(status);
  return ratio !== null && ratio >= WARN_RATIO ? 'warn' : 'ok';
}

/** "demo, demo:upper (loading 40%)", or "no model". */
export function describeEntries(entries: IEntryStatus[]): string {
  const names = entries
    .filter(entry => entry.state === 'loaded' || entry.state === 'loading')
    .map(entry =>
      entry.state === 'loading'
        ? `${entry.id} (loading ${formatPercent(entry.progress)})`
        : entry.id
    );
  return names.length ? names.join(', ') : 'no model';
}

/** A remote entry's server and the round trip of its last health check:
 * "remote http://gpu-box:8000/v1 · 12 ms"; null for a local entry. */
export function describeRemote(entry: IEntryStatus): string | null {
  if (!entry.remote) {
    return null;
  }
  const latency = entry.latency_ms === null ? '' : ` · ${Math.round(entry.latency_ms)} ms`;
  return `remote ${entry.remote}${latency}`;
}

/** The status bar's text: "MLX: demo · 12 MB / 8 GB". */
export function statusText(status: IPoolStatus | null, error: string | null): string {
  if (!status) {
    return error ? 'MLX: unavailable' : 'MLX: …';
  }
  if (status.state !== 'running') {
    return `MLX: ${status.state}`;
  }
  return `MLX: ${describeEntries(status.entries)} · ${formatMemory(status)}`;
}
