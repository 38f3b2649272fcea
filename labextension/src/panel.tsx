/** The sidebar panel: the engine's memory, queue and throughput, and every
 * configured or loaded model and adapter with load / unload / pin buttons. */
import { Button, VDomRenderer, refreshIcon } from '@jupyterlab/ui-components';
import * as React from 'react';

import { IPoolStatus } from './api';
import {
  describeRemote,
  formatBytes,
  formatMemory,
  formatPercent,
  formatRecent,
  memoryRatio,
  sparklinePoints,
  statusLevel
} from './format';
import { mlxIcon } from './icon';
import { IPoolRow, PoolModel } from './model';

export class PoolPanel extends VDomRenderer<PoolModel> {
  constructor(model: PoolModel) {
    super(model);
    this.id = 'mlx-workbench-pool';
    this.addClass('mlx-Panel');
    this.title.icon = mlxIcon;
    this.title.caption = 'MLX model pool';
  }

  render(): JSX.Element {
    const { status, error } = this.model;
    return (
      <>
        <header className="mlx-Panel-header">
          <h2>MLX model pool</h2>
          <Button minimal small title="Refresh" onClick={() => void this.model.refresh()}>
            <refreshIcon.react tag="span" />
          </Button>
        </header>
        {error && <p className="mlx-Error">MLX server unavailable: {error}</p>}
        {status && <EngineSection status={status} />}
        {status && (
          <section className="mlx-Models">
            <h3>Models</h3>
            {this.model.rows.map(row => (
              <ModelRow key={row.id} row={row} model={this.model} />
            ))}
          </section>
        )}
      </>
    );
  }
}

function EngineSection({ status }: { status: IPoolStatus }): JSX.Element {
  const ratio = memoryRatio(status);
  const { memory } = status;
  const cacheLookups = status.prompt_cache_hits + status.prompt_cache_misses;
  return (
    <section className="mlx-Engine">
      <dl>
        <dt>Engine</dt>
        <dd className="mlx-Engine-state" data-state={status.state}>
          {status.state} on {memory.device || 'unknown device'} · v{status.version}
        </dd>
        <dt>Memory</dt>
        <dd className="mlx-Engine-memory">
          {formatMemory(status)}
          {ratio !== null && <Meter ratio={ratio} level={statusLevel(status)} />}
          <span className="mlx-Detail">
            peak {formatBytes(memory.peak)} · cache {formatBytes(memory.cache)}
          </span>
        </dd>
        <dt>Requests</dt>
        <dd className="mlx-Engine-queue">
          {status.active_requests} running · {status.queued_requests} queued (limit{' '}
          {status.queue_limit})
        </dd>
        <dt>Throughput</dt>
        <dd className="mlx-Engine-throughput">
          {status.tokens_per_second.toFixed(1)} tok/s · {status.generated_tokens} tokens generated
        </dd>
        <dt>Last {Math.round(status.recent.window_seconds / 60)} min</dt>
        <dd className="mlx-Engine-recent">
          <svg width={120} height={16} className="mlx-Sparkline">
            <title>tokens/s per {status.recent.bucket_seconds} s</title>
            <polyline
              points={sparklinePoints(status.recent.tokens_per_second, 120, 16)}
              fill="none"
              stroke="currentColor"
            />
          </svg>
          <span className="mlx-Detail">{formatRecent(status.recent)}</span>
        </dd>
        <dt>Prompt cache</dt>
        <dd>
          {cacheLookups
            ? `${status.prompt_cache_hits} hits / ${cacheLookups} lookups · ${formatBytes(status.prompt_cache_bytes)} kept`
            : 'no lookups yet'}
        </dd>
        {status.restarts > 0 && (
          <>
            <dt>Restarts</dt>
            <dd>{status.restarts}</dd>
          </>
        )}
      </dl>
      {status.error && <p className="mlx-Error">{status.error}</p>}
    </section>
  );
}

function ModelRow({ row, model }: { row: IPoolRow; model: PoolModel }): JSX.Element {
  const entry = row.entry;
  const state = entry?.state ?? 'unloaded';
  const pinned = entry?.pinned ?? false;
  const busy = model.isBusy(row.id);
  const error = model.actionError(row.id) ?? entry?.error;
  const active = state === 'loaded' || state === 'loading';
  const details = [
    entry ? describeRemote(entry) : null,
    entry?.family,
    entry?.context_length ? `context ${entry.context_length}` : null,
    entry?.active_requests ? `${entry.active_requests} running` : null
  ].filter(Boolean);
  return (
    <div className="mlx-Model" data-id={row.id} data-state={state}>
      <div className="mlx-Model-line">
        <span className={row.adapter ? 'mlx-Model-name mlx-mod-adapter' : 'mlx-Model-name'}>
          {row.id}
        </span>
        <span className={`mlx-Model-state mlx-mod-${state}`}>{state}</span>
        {pinned && <span className="mlx-Model-pinned">pinned</span>}
        {entry && entry.memory_bytes > 0 && (
          <span className="mlx-Model-memory">{formatBytes(entry.memory_bytes)}</span>
        )}
      </div>
      {state === 'loading' && <Meter ratio={entry?.progress ?? 0} level="ok" />}
      {details.length > 0 && <div className="mlx-Detail">{details.join(' · ')}</div>}
      {error && <p className="mlx-Error">{error}</p>}
      <div className="mlx-Model-actions">
        {!active && (
          <Button small disabled={busy} onClick={() => void model.load(row)}>
            Load
          </Button>
        )}
        {(active || state === 'failed') && (
          // A failed entry's Unload forgets the failure.
          <Button small disabled={busy} onClick={() => void model.unload(row)}>
            Unload
          </Button>
        )}
        <Button small minimal disabled={busy} onClick={() => void model.pin(row, !pinned)}>
          {pinned ? 'Unpin' : 'Pin'}
        </Button>
      </div>
    </div>
  );
}

function Meter({ ratio, level }: { ratio: number; level: string }): JSX.Element {
  const clamped = Math.min(Math.max(ratio, 0), 1);
  return (
    <div
      className={`mlx-Meter mlx-mod-${level}`}
      role="progressbar"
      aria-valuenow={Math.round(clamped * 100)}
      title={formatPercent(ratio)}
    >
      <div className="mlx-Meter-fill" style={{ width: formatPercent(clamped) }} />
    </div>
  );
}
