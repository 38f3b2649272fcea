/**
 * The status bar item: "MLX: demo · 12 MiB / 8 GiB", coloured near the budget, and
 * "· completing" while an inline completion runs.
 */
import { VDomRenderer } from '@jupyterlab/ui-components';
import * as React from 'react';

import { MLXInlineProvider } from './inline';
import { PoolModel } from './model';
import { formatPercent, memoryRatio, statusLevel, statusText } from './format';

export class PoolStatusItem extends VDomRenderer<PoolModel> {
  constructor(
    model: PoolModel,
    private readonly _inline: MLXInlineProvider,
    onClick: () => void
  ) {
    super(model);
    this._onClick = onClick;
    _inline.runningChanged.connect(() => this.update(), this);
    this.addClass('mlx-StatusItem');
    this.addClass('jp-mod-highlighted'); // clickable, like the kernel status item
  }

  render(): JSX.Element {
    const { status, error } = this.model;
    const level = error ? 'error' : statusLevel(status);
    return (
      <span
        className={`jp-StatusBar-TextItem mlx-StatusItem-text mlx-mod-${level}`}
        data-level={level}
        title={this._tooltip()}
        onClick={this._onClick}
      >
        {statusText(status, error)}
        {this._inline.running && <span className="mlx-StatusItem-inline"> · completing</span>}
      </span>
    );
  }

  private _tooltip(): string {
    const { status, error } = this.model;
    if (!status) {
      return `MLX Workbench: ${error ?? 'waiting for the server'}`;
    }
    const ratio = memoryRatio(status);
    return [
      `MLX Workbench ${status.version}: engine ${status.state} on ${status.memory.device || 'unknown device'}`,
      ratio === null ? 'no memory budget' : `${formatPercent(ratio)} of the memory budget`,
      `${status.active_requests} running, ${status.queued_requests} queued, ${status.tokens_per_second.toFixed(1)} tok/s`,
      status.error ?? 'Click to open the model pool.'
    ].join('\n');
  }

  private _onClick: () => void;
}
