import { LabIcon } from '@jupyterlab/ui-components';

/** A chip with "MLX" on it; `jp-icon3` lets the theme colour it. */
const svgstr = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M8 2h2v3H8zM14 2h2v3h-2zM8 19h2v3H8zM14 19h2v3h-2zM2 8h3v2H2zM2 14h3v2H2zM19 8h3v2h-3zM19 14h3v2h-3z"/>
    <path d="M6 5h12a1 1 0 0 1 1 1v12a1 1 0 0 1-1 1H6a1 1 0 0 1-1-1V6a1 1 0 0 1 1-1zm1.5 4v6h1.3v-3.6l1.2 2.4 1.2-2.4V15h1.3V9h-1.3L10 11.6 8.8 9zm6 0v6h3.5v-1.3h-2.2V9z"/>
  </g>
</svg>`;

export const mlxIcon = new LabIcon({ name: 'mlx-workbench:mlx', svgstr });
