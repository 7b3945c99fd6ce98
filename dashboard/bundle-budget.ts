import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Plugin } from 'vite';

/** The ceiling for the JavaScript a first visit downloads before any page's own chunk. */
export const INITIAL_JS_BUDGET = 300 * 1024;

/**
 * The gzipped size of the JavaScript index.html loads at once: its module script and every chunk it preloads (Vite
 * lists the entry's static imports as modulepreload links). Pages are lazy chunks and do not count.
 */
export function initialJavaScript(outDir: string): { files: string[]; gzipBytes: number } {
  const html = readFileSync(join(outDir, 'index.html'), 'utf8');
  const files = [
    ...html.matchAll(/<(?:script[^>]*\ssrc|link[^>]*rel="modulepreload"[^>]*\shref)="\/dashboard\/([^"]+\.js)"/g),
  ].map((match) => match[1]);
  const gzipBytes = files.reduce((sum, file) => sum + gzipSync(readFileSync(join(outDir, file))).length, 0);
  return { files, gzipBytes };
}

/** Fails the build when the initial JavaScript outgrows the budget, so it cannot creep past it unnoticed. */
export function initialBundleBudget(): Plugin {
  let outDir = '';
  return {
    name: 'payforward-initial-bundle-budget',
    apply: 'build',
    configResolved(config) {
      outDir = config.build.outDir;
    },
    closeBundle() {
      const { files, gzipBytes } = initialJavaScript(outDir);
      if (files.length === 0) throw new Error('bundle budget: index.html loads no script');
      if (gzipBytes > INITIAL_JS_BUDGET)
        throw new Error(
          `bundle budget: the initial JavaScript is ${(gzipBytes / 1024).toFixed(1)} KB gzipped ` +
            `(${files.join(', ')}), over ${INITIAL_JS_BUDGET / 1024} KB`,
        );
    },
  };
}
