/**
 * Inline completion (ghost text) from the MLX model pool, as a JupyterLab inline
 * completion provider: the code before and after the cursor and the code cells
 * above go to mlx/api/inline-completions, whose answer streams in as ghost text.
 * A keystroke aborts the request in flight; the server sees its client gone and
 * cancels the generation (not just the browser's wait for it).
 */
import {
  CompletionHandler,
  IInlineCompletionContext,
  IInlineCompletionItem,
  IInlineCompletionList,
  IInlineCompletionProvider,
  InlineCompletionTriggerKind
} from '@jupyterlab/completer';
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { mlxIcon } from './icon';

/** The user's settings (schema/plugin.json, "inlineCompletion"). */
export interface IInlineSettings {
  enabled: boolean;
  model: string;
  adapter: string;
  maxTokens: number;
  debounce: number;
  stopAt: 'line' | 'blank_line' | 'cell';
  contextCells: number;
}

export const DEFAULT_INLINE_SETTINGS: IInlineSettings = {
  enabled: true,
  model: '',
  adapter: '',
  maxTokens: 64,
  debounce: 250,
  stopAt: 'blank_line',
  contextCells: 20
};

export class MLXInlineProvider implements IInlineCompletionProvider {
  readonly identifier = 'mlx-workbench';
  readonly name = 'MLX Workbench';
  readonly icon = mlxIcon;
  // JupyterLab's own provider settings: our debounce runs inside fetch (so that a
  // keystroke aborts the request in flight at once), and a cold model may take a while.
  readonly schema = { default: { debouncerDelay: 0, timeout: 60000, autoFillInMiddle: true } };

  /**
   * @param defaultModel the server's default model, used when the settings name none
   */
  constructor(
    private readonly _defaultModel: () => string | null,
    private readonly _server: ServerConnection.ISettings = ServerConnection.makeSettings()
  ) {}

  settings: IInlineSettings = DEFAULT_INLINE_SETTINGS;

  /** Emits true when a completion starts, false when none runs any more. */
  get runningChanged(): ISignal<this, boolean> {
    return this._runningChanged;
  }

  get running(): boolean {
    return this._current !== null;
  }

  async fetch(
    request: CompletionHandler.IRequest,
    context: IInlineCompletionContext
  ): Promise<IInlineCompletionList> {
    this._cancel(); // the user typed on: the last request is of no use any more
    const model = this.settings.model || this._defaultModel();
    if (!this.settings.enabled || !model) {
      return { items: [] };
    }
    const completion = new Completion();
    this._start(completion);
    if (context.triggerKind === InlineCompletionTriggerKind.Automatic && this.settings.debounce) {
      await new Promise(resolve => setTimeout(resolve, this.settings.debounce));
    }
    if (completion.aborted) {
      return { items: [] };
    }
    const prefix = request.text.slice(0, request.offset);
    const above = cellsAbove(context.widget, this.settings.contextCells);
    if (!prefix && !above.length) {
      this._end(completion);
      return { items: [] }; // an empty first cell: nothing to go on yet
    }
    const body = {
      model,
      adapter: this.settings.adapter || null,
      prefix,
      suffix: request.text.slice(request.offset),
      context: above,
      max_tokens: this.settings.maxTokens,
      stop_at: this.settings.stopAt,
      stream: true
    };
    const url = URLExt.join(this._server.baseUrl, 'mlx/api/inline-completions');
    const item = await completion.start(url, body, this._server);
    if (item === null || completion.done) {
      this._end(completion);
    }
    return { items: item ? [item] : [] };
  }

  async *stream(token: string): AsyncGenerator<{ response: IInlineCompletionItem }> {
    const completion = this._current;
    if (completion === null || completion.token !== token) {
      return; // superseded by a keystroke before JupyterLab asked for the rest
    }
    try {
      yield* completion.rest();
    } finally {
      this._end(completion);
    }
  }

  private _start(completion: Completion): void {
    this._current = completion;
    this._runningChanged.emit(true);
  }

  private _end(completion: Completion): void {
    if (this._current === completion) {
      this._current = null;
      this._runningChanged.emit(false);
    }
  }

  private _cancel(): void {
    const current = this._current;
    if (current) {
      current.abort();
      this._end(current);
    }
  }

  private _current: Completion | null = null;
  private _runningChanged = new Signal<this, boolean>(this);
}

let tokens = 0;

/** One request and its event stream of OpenAI text completion chunks. */
class Completion {
  readonly token = `mlx-inline-${++tokens}`;
  text = '';
  done = false;

  get aborted(): boolean {
    return this._controller.signal.aborted;
  }

  abort(): void {
    this._controller.abort();
  }

  /** Sends the request; the item with the first text, or null if none comes. */
  async start(
    url: string,
    body: object,
    server: ServerConnection.ISettings
  ): Promise<IInlineCompletionItem | null> {
    const init = { method: 'POST', body: JSON.stringify(body), signal: this._controller.signal };
    try {
      const response = await ServerConnection.makeRequest(url, init, server);
      if (!response.ok || !response.body) {
        const error = await response.json().catch(() => null);
        const message = error?.error?.message ?? response.statusText;
        return { insertText: '', error: { message: `${response.status}: ${message}` } };
      }
      this._events = events(response.body.getReader());
      while (!this.text && (await this._next())) {
        // the ghost text shows from the first character on
      }
    } catch (error) {
      if (this.aborted) {
        return null;
      }
      return { insertText: '', error: { message: String(error) } };
    }
    return this.text ? this._item() : null;
  }

  /** The rest of the stream, the whole text so far each time. */
  async *rest(): AsyncGenerator<{ response: IInlineCompletionItem }> {
    try {
      while (await this._next()) {
        yield { response: this._item() };
      }
    } catch (error) {
      if (this.aborted) {
        return; // a keystroke superseded it: nothing more to show
      }
      yield { response: { ...this._item(), error: { message: String(error) } } };
    }
    yield { response: this._item() };
  }

  /** Reads one event; false once the stream has ended. */
  private async _next(): Promise<boolean> {
    const next = this.done || !this._events ? null : await this._events.next();
    if (!next || next.done) {
      this.done = true;
      return false;
    }
    const chunk = JSON.parse(next.value);
    if (chunk.error) {
      throw new Error(chunk.error.message);
    }
    this.text += chunk.choices?.[0]?.text ?? '';
    return true;
  }

  private _item(): IInlineCompletionItem {
    return { insertText: this.text, isIncomplete: !this.done, token: this.token };
  }

  private _controller = new AbortController();
  private _events: AsyncGenerator<string> | null = null;
}

/** The `data:` of each server-sent event, up to [DONE]; keep-alive comments skipped. */
async function* events(reader: ReadableStreamDefaultReader<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) {
      return;
    }
    buffer += decoder.decode(value, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = event
        .split('\n')
        .filter(line => line.startsWith('data:'))
        .map(line => line.slice(5).trim())
        .join('\n');
      if (data === '[DONE]') {
        return;
      }
      if (data) {
        yield data;
      }
    }
  }
}

/** A notebook as far as the provider reads it: its cells, the active one. */
interface INotebookLike {
  content: {
    activeCellIndex: number;
    widgets: ReadonlyArray<{ model: { type: string; sharedModel: { getSource(): string } } }>;
  };
}

/** The source of up to `count` code cells above the active one, first to last. */
function cellsAbove(widget: Widget, count: number): string[] {
  const notebook = (widget as Partial<INotebookLike>).content;
  if (!notebook?.widgets || count <= 0) {
    return []; // a console or a file editor: the text at hand only
  }
  return notebook.widgets
    .slice(0, Math.max(notebook.activeCellIndex, 0))
    .filter(cell => cell.model.type === 'code')
    .slice(-count)
    .map(cell => cell.model.sharedModel.getSource());
}
