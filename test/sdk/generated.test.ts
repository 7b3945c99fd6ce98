import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { staleSdkFiles } from '../../scripts/sdk/build.js';
import { offlineOpenApiDocument } from '../../scripts/sdk/openapi-document.js';
import { bootApp, type TestApp } from '../helpers.js';

let t: TestApp;

beforeAll(async () => {
  t = await bootApp();
});
afterAll(() => t?.close());

describe("the SDK's generated files", () => {
  it('match the current API: run `npm run sdk:build` and commit when this fails', async () => {
    expect(await staleSdkFiles()).toEqual([]);
  });

  it('come from the same document the running API serves (without its code samples and servers)', async () => {
    const served = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    const offline = await offlineOpenApiDocument();
    for (const operations of Object.values(served.paths as Record<string, Record<string, Record<string, unknown>>>))
      for (const operation of Object.values(operations)) delete operation['x-codeSamples'];
    expect({ ...offline, servers: undefined }).toEqual({ ...served, servers: undefined });
  });
});
