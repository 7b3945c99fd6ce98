import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** A TCP port on 127.0.0.1 that nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

/** Strong secrets for every variable production demands (NODE_ENV=production), freshly generated. */
export function productionSecrets(): Record<string, string> {
  const text = () => randomBytes(32).toString('base64url');
  return {
    NODE_ENV: 'production',
    PLATFORM_API_KEY: `op_platform_${text()}`,
    VAULT_KEK: randomBytes(32).toString('base64'),
    VAULT_FINGERPRINT_KEY: randomBytes(32).toString('base64'),
    JWT_SECRET: text(),
    AUDIT_SIGNING_KEY: randomBytes(32).toString('base64'),
    APP_DB_PASSWORD: text(),
    WORKER_DB_PASSWORD: text(),
  };
}

export interface ServerProcess {
  child: ChildProcess;
  baseUrl: string;
  /** Everything the process wrote to stdout and stderr. */
  output: () => string;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  exited: Promise<number | string | null>;
}

/** Polls `condition` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(
  condition: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 20_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await condition();
      if (value) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Starts the real PayForward binary (`node --import tsx src/main.ts <command>`) as a child
 * process and, for commands that serve HTTP, waits until /health answers.
 */
export async function startServer(
  command: 'api' | 'worker' | 'start',
  env: Record<string, string>,
): Promise<ServerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', command], {
    cwd: ROOT,
    // Not production unless a test says so: production demands strong secrets from the environment
    // (see productionSecrets), which tests that pass fixed test keys do not have.
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', NODE_ENV: 'test', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += String(chunk)));
  child.stderr!.on('data', (chunk) => (output += String(chunk)));
  const exited = new Promise<number | string | null>((resolveExit) => {
    child.once('exit', (code, signal) => resolveExit(code ?? signal));
  });
  let exitedEarly = false;
  void exited.then(() => (exitedEarly = true));
  const baseUrl = `http://127.0.0.1:${env.PORT}`;
  if (command !== 'worker') {
    await waitFor(
      async () => {
        if (exitedEarly) throw new Error(`server exited during start:\n${output}`);
        const response = await fetch(`${baseUrl}/health`).catch(() => undefined);
        return response?.ok;
      },
      120_000,
      `the server on ${baseUrl}`,
    ).catch((error) => {
      child.kill('SIGKILL');
      throw new Error(`${(error as Error).message}\n${output}`);
    });
  } else {
    await waitFor(
      () => output.includes('PayForward worker running') || (exitedEarly && Promise.reject(new Error(output))),
      120_000,
      'the worker',
    );
  }
  return { child, baseUrl, output: () => output, exited };
}

/** Runs the binary for a command expected to stop by itself (a refusal to start); its exit code and output. */
export async function runUntilExit(
  command: 'api' | 'worker' | 'start' | 'verify-audit' | 'seed-demo',
  env: Record<string, string>,
  timeoutMs = 60_000,
  args: string[] = [],
): Promise<{ code: number | string | null; output: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', command, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', NODE_ENV: 'test', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += String(chunk)));
  child.stderr!.on('data', (chunk) => (output += String(chunk)));
  const deadline = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number | string | null>((resolveExit) => {
    child.once('exit', (exitCode, signal) => resolveExit(exitCode ?? signal));
  });
  clearTimeout(deadline);
  return { code, output };
}

/** SIGKILLs the process if it is still running and waits for it to be gone. */
export async function stopServer(server: ServerProcess | undefined, signal: NodeJS.Signals = 'SIGKILL') {
  if (!server) return;
  if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill(signal);
  await server.exited;
}
