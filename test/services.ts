import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
/**
 * Whether a suite that needs an external service can run. Without the service it is skipped on
 * a developer's bare machine, but under CI=true a missing service fails the run instead: CI must
 * never pass by skipping.
 */
export function serviceUrl(name: 'REDIS_URL' | 'AMQP_URL'): string | undefined {
  const url = process.env[name];
  if (!url && process.env.CI === 'true')
    throw new Error(`${name} is not set: CI must run this suite against the real service`);
  return url;
}

export const CHROMIUM_PATH = '/usr/bin/chromium';

/**
 * How long a browser suite waits for one step of a page (a navigation, a frame's button, a redirect), and a browser
 * test's own timeout. Alone a step takes a second or two; in a full run, beside the other worker's load on 2 cores,
 * the hosted checkout's 3-D Secure redirect once took 24 s, past the 20 s it had then.
 */
export const BROWSER_STEP_MS = 60_000;
export const BROWSER_TEST_MS = 180_000;

/** Debian's Chromium, which `.ci/run` installs; like the services, missing it fails CI. */
export function chromiumAvailable(): boolean {
  const available = existsSync(CHROMIUM_PATH);
  if (!available && process.env.CI === 'true')
    throw new Error(`${CHROMIUM_PATH} is missing: CI must run the browser tests`);
  return available;
}

/**
 * The one Chromium launch of the browser suites, so they run it alike: headless, and kept from traffic of its own
 * (QUIC, updates, sync) beside the test pages' requests.
 */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** LightGBM in `.venv-fraud` (which `.ci/run` creates), for the fraud model's training tests; missing it fails CI. */
export function fraudTrainerAvailable(available: boolean): boolean {
  if (!available && process.env.CI === 'true')
    throw new Error('.venv-fraud with lightgbm is missing: CI must run the fraud training tests');
  return available;
}
