import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';
import { initialBundleBudget } from './bundle-budget.ts';

const root = fileURLToPath(new URL('.', import.meta.url));

/**
 * `npm run build` runs this after the API's bundle. DASHBOARD_OUT_DIR lets the browser tests build into a folder of
 * their own instead of the shared dist/dashboard.
 */
export default defineConfig({
  root,
  base: '/dashboard/',
  plugins: [react(), initialBundleBudget()],
  build: {
    outDir: process.env.DASHBOARD_OUT_DIR ?? fileURLToPath(new URL('../dist/dashboard', import.meta.url)),
    emptyOutDir: true,
    sourcemap: false,
    // The budget plugin judges the initial load as a whole; Vite's per-chunk warning adds nothing.
    chunkSizeWarningLimit: 2000,
  },
  logLevel: 'warn',
});
