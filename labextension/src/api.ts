/**
 * The pool admin API of the MLX Workbench server extension (mlx/api/...),
 * spoken through Jupyter's own ServerConnection so auth and XSRF are Jupyter's.
 * The types mirror the OpenAPI document (tests/test_labextension_types.py checks them).
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export type EntryState = 'unloaded' | 'loading' | 'loaded' | 'failed';

export interface IEntryStatus {
  id: string;
  model: string;
  adapter: string | null;
  state: EntryState;
  progress: number;
  memory_bytes: number;
  pinned: boolean;
  family: string | null;
  context_length: number | null;
  last_used: number | null;
  active_requests: number;
  error: string | null;
  remote: string | null;
  latency_ms: number | null;
}

export interface IMemoryStatus {
  active: number;
  peak: number;
  cache: number;
  budget: number | null;
  device: string;
}

/** Figures over the last minutes: requests that ended in the window, tokens/s per bucket. */
export interface IRecentStatus {
  window_seconds: number;
  bucket_seconds: number;
  requests: number;
  ttft_p50: number | null;
  ttft_p90: number | null;
  ttft_p99: number | null;
  tokens_per_second: number[];
}

export interface IConfiguredModel {
  name: string;
  path: string;
  adapters: string[];
}

export interface IPoolStatus {
  version: string;
  openai_base_url: string;
  default_model: string | null;
  configured: IConfiguredModel[];
  state: 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';
  entries: IEntryStatus[];
  memory: IMemoryStatus;
  active_requests: number;
  queued_requests: number;
  queue_limit: number;
  tokens_per_second: number;
  generated_tokens: number;
  cancelled_requests: number;
  steps_after_cancel: number;
  prompt_cache_hits: number;
  prompt_cache_misses: number;
  prompt_cache_bytes: number;
  recent: IRecentStatus;
  restarts: number;
  error: string | null;
}

/** A (model, adapter) pair, named on the wire as the OpenAI id "model:adapter". */
export interface IModelRef {
  model: string;
  adapter: string | null;
}

/**
 * The model id of a (model, adapter) pair, as mlx_workbench/model_ids.py formats it:
 * the adapter follows the last colon (a model name may hold colons, an adapter name
 * may not). The extension never splits an id: entries carry model and adapter.
 */
export const MODEL_ID_SEPARATOR = ':';

export function modelId(ref: IModelRef): string {
  return ref.adapter ? `${ref.model}${MODEL_ID_SEPARATOR}${ref.adapter}` : ref.model;
}

export class PoolClient {
  constructor(readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()) {}

  /** The OpenAI base URL clients use: the server's URL + mlx/v1. */
  get openaiBaseUrl(): string {
    return URLExt.join(this.settings.baseUrl, 'mlx/v1');
  }

  status(): Promise<IPoolStatus> {
    return this._request('status');
  }

  /** Starts loading and returns at once; progress shows in status(). */
  load(ref: IModelRef): Promise<unknown> {
    return this._request('models/load', { ...ref, wait: false });
  }

  unload(ref: IModelRef): Promise<unknown> {
    return this._request('models/unload', { ...ref });
  }

  pin(ref: IModelRef, pinned: boolean): Promise<unknown> {
    return this._request('models/pin', { ...ref, pinned });
  }

  private async _request<T>(path: string, body?: object): Promise<T> {
    const url = URLExt.join(this.settings.baseUrl, 'mlx/api', path);
    const init: RequestInit = body
      ? { method: 'POST', body: JSON.stringify(body) }
      : { method: 'GET' };
    const response = await ServerConnection.makeRequest(url, init, this.settings);
    const text = await response.text();
    const data = parseJSON(text);
    if (response.status === 404 && !data?.error) {
      throw new Error('the mlx_workbench server extension is not enabled on this server (404)');
    }
    if (!response.ok) {
      // The server answers OpenAI-style errors: {"error": {"message", ...}}.
      const message = data?.error?.message ?? response.statusText;
      throw new Error(`${response.status}: ${message}`);
    }
    return data as T;
  }
}

/** A body as the server may answer it: JSON, an OpenAI-style error among them. */
interface IBody {
  error?: { message?: string };
}

function parseJSON(text: string): IBody | null {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
