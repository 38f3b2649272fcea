/**
 * MLX Workbench in JupyterLab: the pool and memory in the status bar, a
 * sidebar panel to load, unload and pin models, palette commands that copy
 * the OpenAI base URL or a ready-to-run Python snippet, and inline completion
 * (ghost text) in cells from a pool model, configured in the Settings editor.
 */
import { ILabShell, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Clipboard, ICommandPalette, Notification } from '@jupyterlab/apputils';
import { ICompletionProviderManager } from '@jupyterlab/completer';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';

import { PoolClient } from './api';
import { DEFAULT_INLINE_SETTINGS, IInlineSettings, MLXInlineProvider } from './inline';
import { PoolModel } from './model';
import { PoolPanel } from './panel';
import { openaiSnippet } from './snippet';
import { PoolStatusItem } from './statusbar';

const CommandIDs = {
  showPool: 'mlx-workbench:show-pool',
  copyBaseUrl: 'mlx-workbench:copy-openai-base-url',
  copySnippet: 'mlx-workbench:copy-openai-snippet'
} as const;

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'mlx-workbench:plugin',
  description: 'The MLX model pool and memory in the JupyterLab UI.',
  autoStart: true,
  requires: [ILabShell],
  optional: [IStatusBar, ICommandPalette, ICompletionProviderManager, ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    shell: ILabShell,
    statusBar: IStatusBar | null,
    palette: ICommandPalette | null,
    completions: ICompletionProviderManager | null,
    settingRegistry: ISettingRegistry | null
  ) => {
    const client = new PoolClient();
    const model = new PoolModel(client);
    const inline = new MLXInlineProvider(() => defaultModel(model), client.settings);
    completions?.registerInlineProvider(inline);
    settingRegistry
      ?.load(plugin.id)
      .then(settings => {
        const apply = () => {
          const chosen = settings.composite.inlineCompletion as Partial<IInlineSettings>;
          inline.settings = { ...DEFAULT_INLINE_SETTINGS, ...chosen };
        };
        settings.changed.connect(apply);
        apply();
      })
      .catch(error => console.warn('mlx-workbench: settings not loaded, defaults used', error));
    const panel = new PoolPanel(model);
    shell.add(panel, 'left', { rank: 1000, type: 'MLX model pool' });

    const { commands } = app;
    commands.addCommand(CommandIDs.showPool, {
      label: 'MLX: Show Model Pool',
      execute: () => shell.activateById(panel.id)
    });
    commands.addCommand(CommandIDs.copyBaseUrl, {
      label: 'MLX: Copy OpenAI Base URL',
      execute: () => {
        Clipboard.copyToSystem(client.openaiBaseUrl);
        Notification.success(`Copied ${client.openaiBaseUrl}`, { autoClose: 3000 });
      }
    });
    commands.addCommand(CommandIDs.copySnippet, {
      label: 'MLX: Copy OpenAI Python Snippet',
      execute: () => {
        Clipboard.copyToSystem(
          openaiSnippet(client.openaiBaseUrl, client.settings.token, defaultModel(model))
        );
        Notification.success('Copied a Python snippet using the MLX OpenAI server', {
          autoClose: 3000
        });
      }
    });
    for (const command of Object.values(CommandIDs)) {
      palette?.addItem({ command, category: 'MLX Workbench' });
    }

    statusBar?.registerStatusItem(plugin.id, {
      item: new PoolStatusItem(model, inline, () => void commands.execute(CommandIDs.showPool)),
      align: 'left',
      rank: 10
    });
  }
};

/** The model a snippet names: the server's default, else the first one configured. */
function defaultModel(model: PoolModel): string | null {
  const status = model.status;
  return status?.default_model ?? status?.configured[0]?.name ?? null;
}

export default plugin;
