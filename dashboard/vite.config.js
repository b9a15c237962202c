// Build of the node's dashboard into the Python package that ships it (control/dashboard_assets).
// Relative asset paths: the control API serves the same build at /dashboard/, / and /scale/,
// and sets a <base href> per mount.
import { defineConfig } from 'vite';
import preact from '@preact/preset-vite';

export default defineConfig({
  base: './',
  plugins: [preact()],
  build: {
    outDir: '../control/dashboard_assets/site',
    emptyOutDir: true,
    assetsDir: 'assets',
    sourcemap: false,
    chunkSizeWarningLimit: 1200,
  },
});
