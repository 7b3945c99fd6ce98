import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { bootApp, bootAppOnOwnDatabase, createTenant, TestClock, type TestApp, type TestTenant } from './helpers.js';
import { freePort } from './process.js';
import { launchChromium } from './services.js';
import { newMember, type Member } from './team.js';

const ROOT = new URL('..', import.meta.url).pathname;
/** What the dashboard build reads: its own sources, the SDK it calls through, and the pinned dependencies. */
const BUILD_INPUTS = ['dashboard', 'sdk/src', 'package-lock.json'];

function filesUnder(path: string): string[] {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path).flatMap((name) => filesUnder(join(path, name)));
}

/**
 * Builds the dashboard once per distinct source tree into a folder named by the sources' hash, so parallel test
 * files and repeated runs share one build (about a second or two), and a stale build can never be tested. The build
 * goes to a private folder first and is renamed into place: a reader never sees half of one.
 */
export function buildDashboard(): string {
  const hash = createHash('sha256');
  for (const file of BUILD_INPUTS.flatMap((input) => filesUnder(join(ROOT, input))).sort())
    hash.update(relative(ROOT, file)).update('\0').update(readFileSync(file));
  const outDir = join(tmpdir(), `payforward-dashboard-${hash.digest('hex').slice(0, 16)}`);
  if (existsSync(join(outDir, 'index.html'))) return outDir;
  const building = `${outDir}.${process.pid}`;
  execFileSync('npx', ['vite', 'build', '--config', 'dashboard/vite.config.ts'], {
    cwd: ROOT,
    env: { ...process.env, DASHBOARD_OUT_DIR: building },
    stdio: 'pipe',
  });
  try {
    renameSync(building, outDir);
  } catch (error) {
    // Another test file finished the same build first: use its folder.
    if (!existsSync(join(outDir, 'index.html'))) throw error;
    rmSync(building, { recursive: true, force: true });
  }
  return outDir;
}

export interface DashboardRun {
  t: TestApp;
  clock: TestClock;
  baseUrl: string;
  tenant: TestTenant;
  browser: Browser;
  close(): Promise<void>;
}

/**
 * The platform listening on a free port with the built dashboard, one tenant, and Chromium. Session cookies are
 * `Secure`: Chromium keeps them on http://localhost (a potentially trustworthy origin), so the app is reached there.
 * `ownDatabase` (a name) boots on a database of its own, for a file that runs workers acting on every tenant.
 */
export async function bootDashboard(env: Record<string, string> = {}, ownDatabase?: string): Promise<DashboardRun> {
  const dashboardDir = buildDashboard();
  const port = await freePort();
  const baseUrl = `http://localhost:${port}`;
  const clock = new TestClock();
  const settings = { PUBLIC_URL: baseUrl, DASHBOARD_DIR: dashboardDir, ...env };
  const t = ownDatabase
    ? await bootAppOnOwnDatabase(ownDatabase, settings, { clock })
    : await bootApp(settings, undefined, { clock });
  await t.app.listen({ port, host: '127.0.0.1' });
  const tenant = await createTenant(t.app, 'Dashboard tenant');
  const browser = await launchChromium();
  return {
    t,
    clock,
    baseUrl,
    tenant,
    browser,
    async close() {
      await browser.close();
      await t.close();
    },
  };
}

/**
 * The test file's DashboardRun: booted before its tests (`bootDashboard` with these arguments) and closed after
 * them, after the file's own afterAll hooks (vitest runs "after" hooks in reverse). The object is filled in by the
 * beforeAll, so the file's tests and hooks use it as they would the booted run.
 */
export function dashboardRunOfFile(env: Record<string, string> = {}, ownDatabase?: string): DashboardRun {
  const run = {} as DashboardRun;
  beforeAll(async () => {
    Object.assign(run, await bootDashboard(env, ownDatabase));
  });
  afterAll(() => run.close?.());
  return run;
}

/** A signed-in member of the run's tenant with `role` (invited through the live key, TOTP enrolled). */
export const memberOf = (run: DashboardRun, role: string, tenant = run.tenant): Promise<Member> =>
  newMember(run.t.app, run.clock, tenant.liveKey, role);

export interface DashboardPage {
  page: Page;
  context: BrowserContext;
  /** Console errors and uncaught exceptions so far; `expectNoConsoleErrors` asserts there are none. */
  consoleErrors: string[];
}

/**
 * Chromium at `path` of the dashboard (e.g. `/payments?status=succeeded`), at 1280×800 unless told, signed in as
 * `member` (its session cookie) or signed out when null. Chromium reports each refused HTTP call (a 401 before
 * sign-in, a 403 a test provokes) as a console line "Failed to load resource"; those are the API's answers, shown
 * by the page, so they are not counted as console errors. Everything else is: script errors, React warnings, CSP
 * violations.
 */
export async function openDashboard(
  run: DashboardRun,
  member: Pick<Member, 'cookie'> | null,
  path = '/',
  viewport = { width: 1280, height: 800 },
): Promise<DashboardPage> {
  // Reduced motion: the app then skips its transitions, so axe never judges a dialog half faded in.
  const context = await run.browser.newContext({ viewport, reducedMotion: 'reduce' });
  if (member)
    await context.addCookies([
      { name: 'pf_session', value: member.cookie, url: run.baseUrl, httpOnly: true, secure: true, sameSite: 'Strict' },
    ]);
  const page = await context.newPage();
  const consoleErrors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource'))
      consoleErrors.push(message.text());
  });
  page.on('pageerror', (error) => consoleErrors.push(String(error)));
  await page.goto(`${run.baseUrl}/dashboard${path}`);
  return { page, context, consoleErrors };
}

/**
 * Moves an open dashboard to `path` the way its own links do (wouter listens to history.pushState), without loading
 * the page again: a full load parses the whole bundle and fetches the session anew, which is most of a page's cost.
 */
export async function navigateInApp(page: Page, path: string) {
  await page.evaluate((to) => history.pushState(null, '', to), `/dashboard${path}`);
}

export function expectNoConsoleErrors(view: DashboardPage) {
  expect(view.consoleErrors).toEqual([]);
}

const axeSource = readFile(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: unknown[] }[];
}

/**
 * axe-core run in the page (evaluated through the DevTools protocol, which the page's CSP does not govern, so the
 * policy under test stays strict) over the whole document; serious and critical violations fail the test, with what
 * and where.
 */
export async function expectAccessible(page: Page) {
  await page.evaluate(await axeSource);
  const violations = (await page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run(context: Document): Promise<{ violations: unknown[] }> } }).axe;
    return (await axe.run(document)).violations;
  })) as AxeViolation[];
  const serious = violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => ({ id: v.id, impact: v.impact, help: v.help, targets: v.nodes.map((n) => n.target).slice(0, 5) }));
  expect(serious).toEqual([]);
}
