/**
 * The pool as the UI sees it: one poll of mlx/api/status shared by the status
 * bar item and the sidebar panel, plus the load / unload / pin actions.
 */
import { VDomModel } from '@jupyterlab/ui-components';
import { Poll } from '@lumino/polling';

import { IEntryStatus, IModelRef, IPoolStatus, PoolClient, modelId } from './api';

/** One line of the panel: a configured or loaded (model, adapter) pair. */
export interface IPoolRow extends IModelRef {
  id: string;
  entry: IEntryStatus | null;
}

export class PoolModel extends VDomModel {
  constructor(readonly client: PoolClient) {
    super();
    this._poll = new Poll({
      factory: () => this._fetch(),
      // Backs off while the server is unreachable; 'when-hidden' stops polling
      // while the browser tab is hidden.
      frequency: { interval: 1000, backoff: true, max: 30 * 1000 },
      standby: 'when-hidden',
      name: 'mlx-workbench:status'
    });
  }

  /** The last status, or null before the first answer and after a failed poll. */
  get status(): IPoolStatus | null {
    return this._status;
  }

  /** Why the last poll failed. */
  get error(): string | null {
    return this._error;
  }

  /** Configured models with their adapters first, then whatever else is loaded. */
  get rows(): IPoolRow[] {
    if (!this._status) {
      return [];
    }
    const entries = new Map(this._status.entries.map(entry => [entry.id, entry]));
    const refs: IModelRef[] = this._status.configured.flatMap(model => [
      { model: model.name, adapter: null },
      ...model.adapters.map(adapter => ({ model: model.name, adapter }))
    ]);
    const configured = new Set(refs.map(modelId));
    refs.push(...this._status.entries.filter(entry => !configured.has(entry.id)));
    return refs.map(ref => {
      const id = modelId(ref);
      return { id, model: ref.model, adapter: ref.adapter, entry: entries.get(id) ?? null };
    });
  }

  /** Whether an action on this id is waiting for the server's answer. */
  isBusy(id: string): boolean {
    return this._busy.has(id);
  }

  /** Why the last action on this id failed. */
  actionError(id: string): string | undefined {
    return this._actionErrors.get(id);
  }

  load(ref: IModelRef): Promise<void> {
    return this._act(ref, () => this.client.load(ref));
  }

  unload(ref: IModelRef): Promise<void> {
    return this._act(ref, () => this.client.unload(ref));
  }

  pin(ref: IModelRef, pinned: boolean): Promise<void> {
    return this._act(ref, () => this.client.pin(ref, pinned));
  }

  /** Polls now instead of at the next tick. */
  refresh(): Promise<void> {
    return this._poll.refresh();
  }

  dispose(): void {
    if (!this.isDisposed) {
      this._poll.dispose();
      super.dispose();
    }
  }

  private async _fetch(): Promise<void> {
    try {
      this._status = await this.client.status();
      this._error = null;
    } catch (error) {
      this._status = null;
      this._error = messageOf(error);
      throw error; // lets the poll back off
    } finally {
      this.stateChanged.emit();
    }
  }

  private async _act(ref: IModelRef, action: () => Promise<unknown>): Promise<void> {
    const id = modelId(ref);
    this._busy.add(id);
    this._actionErrors.delete(id);
    this.stateChanged.emit();
    try {
      await action();
    } catch (error) {
      this._actionErrors.set(id, messageOf(error));
    } finally {
      this._busy.delete(id);
      this.stateChanged.emit();
      void this.refresh();
    }
  }

  private _poll: Poll;
  private _status: IPoolStatus | null = null;
  private _error: string | null = null;
  private _busy = new Set<string>();
  private _actionErrors = new Map<string, string>();
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
