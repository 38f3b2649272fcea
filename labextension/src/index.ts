/**
 * MLX Workbench in JupyterLab: the pool and memory in the status bar, a
 * sidebar panel to load, unload and pin models, and palette commands that copy
 * the OpenAI base URL or a ready-to-run Python snippet.
 */
import { ILabShell, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Clipboard, ICommandPalette, Notification } from '@jupyterlab/apputils';
import { IStatusBar } from '@jupyterlab/statusbar';

import { PoolClient } from './api';
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
  optional: [IStatusBar, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    shell: ILabShell,
    statusBar: IStatusBar | null,
    palette: ICommandPalette | null
  ) => {
    const client = new PoolClient();
    const model = new PoolModel(client);
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
      item: new PoolStatusItem(model, () => void commands.execute(CommandIDs.showPool)),
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
