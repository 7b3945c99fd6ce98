import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootApp, type TestApp } from '../helpers.js';

const ROOT = join(import.meta.dirname, '..', '..');

interface Sample {
  lang: string;
  label: string;
  source: string;
}

let t: TestApp;
let operations: { path: string; method: string; samples: Sample[] }[];

beforeAll(async () => {
  t = await bootApp();
  const document = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json() as {
    paths: Record<string, Record<string, { 'x-codeSamples'?: Sample[] }>>;
  };
  operations = Object.entries(document.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, op]) => ({ path, method, samples: op['x-codeSamples'] ?? [] })),
  );
});
afterAll(() => t?.close());

describe('the docs page shows the SDK next to curl', () => {
  it('every operation of /openapi.json has a curl and an SDK sample for that same operation', () => {
    expect(operations.length).toBeGreaterThan(50);
    for (const { path, method, samples } of operations) {
      const curl = samples.find((s) => s.label === 'curl');
      const sdk = samples.find((s) => s.label === 'SDK');
      expect(curl?.source, `${method} ${path}`).toContain(`curl -X ${method.toUpperCase()} `);
      expect(sdk?.lang).toBe('TypeScript');
      expect(sdk?.source, `${method} ${path}`).toContain(`payforward.api.${method.toUpperCase()}('${path}'`);
    }
  });

  it("every SDK sample type-checks against the SDK's generated types", () => {
    const dir = mkdtempSync(join(tmpdir(), 'pf-sdk-samples-'));
    try {
      const files = operations.map(({ samples }, index) => {
        const file = join(dir, `sample-${index}.mts`);
        writeFileSync(file, samples.find((s) => s.label === 'SDK')!.source + '\nexport {};\n');
        return file;
      });
      const program = ts.createProgram(files, {
        target: ts.ScriptTarget.ES2022,
        module: ts.ModuleKind.NodeNext,
        moduleResolution: ts.ModuleResolutionKind.NodeNext,
        strict: true,
        noEmit: true,
        skipLibCheck: true,
        lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
        types: ['node'],
        typeRoots: [join(ROOT, 'node_modules', '@types')],
        paths: { '@payforward/sdk': [join(ROOT, 'sdk', 'src', 'index.ts')] },
        allowImportingTsExtensions: true,
      });
      const problems = ts.getPreEmitDiagnostics(program).map((d) => {
        const where = d.file ? operations[Number(/sample-(\d+)/.exec(d.file.fileName)?.[1])] : undefined;
        return `${where ? `${where.method} ${where.path}` : ''}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
      });
      expect(problems).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
