/** Plain-text views of the pool status shared by the status bar and the panel. */
import { IEntryStatus, IPoolStatus, IRecentStatus } from './api';

/** Memory use at or above this share of the budget is shown as a warning. */
export const WARN_RATIO = 0.9;

/** Binary units, named as such: the server's memory settings ("512MB") are binary too. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
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

/** "12 MiB / 8 GiB", or "12 MiB" without a budget. */
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

/** The status bar's text: "MLX: demo · 12 MiB / 8 GiB". */
export function statusText(status: IPoolStatus | null, error: string | null): string {
  if (!status) {
    return error ? 'MLX: unavailable' : 'MLX: …';
  }
  if (status.state !== 'running') {
    return `MLX: ${status.state}`;
  }
  return `MLX: ${describeEntries(status.entries)} · ${formatMemory(status)}`;
}

/** "12 ms", or "1.50 s" from a second on; "-" for none. */
export function formatSeconds(seconds: number | null): string {
  if (seconds === null) {
    return '-';
  }
  return seconds < 1 ? `${Math.round(seconds * 1000)} ms` : `${seconds.toFixed(2)} s`;
}

/** "3 requests · TTFT p50 12 ms · p90 30 ms · p99 40 ms", or "no requests". */
export function formatRecent(recent: IRecentStatus): string {
  if (!recent.requests) {
    return 'no requests';
  }
  const plural = recent.requests === 1 ? '' : 's';
  return (
    `${recent.requests} request${plural} · TTFT p50 ${formatSeconds(recent.ttft_p50)}` +
    ` · p90 ${formatSeconds(recent.ttft_p90)} · p99 ${formatSeconds(recent.ttft_p99)}`
  );
}

/** The SVG polyline points of a sparkline of `values`, `width` x `height`. */
export function sparklinePoints(values: number[], width: number, height: number): string {
  const top = Math.max(...values, 0) || 1;
  const step = width / Math.max(values.length - 1, 1);
  return values
    .map((v, i) => `${(i * step).toFixed(1)},${(height - 1 - (v / top) * (height - 2)).toFixed(1)}`)
    .join(' ');
}
