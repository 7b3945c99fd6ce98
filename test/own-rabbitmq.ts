import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as connectTcp } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from './process.js';

/**
 * A RabbitMQ node of the test's own (its own node name, ports, data and log folders, no plugins), for tests that
 * crash and restart the broker: the shared one on 5672 must never be touched. It starts in about 8 s here, and
 * keeps its data folder across a restart, so durable queues and persistent messages come back as they would.
 */
export interface OwnRabbitMq {
  url: string;
  /** Kills the node at once (SIGKILL), as a crash would: no goodbye to clients, nothing flushed on the way out. */
  kill(): Promise<void>;
  start(): Promise<void>;
  remove(): Promise<void>;
}

// The server script itself: the /usr/sbin wrapper switches to the rabbitmq user, in a process group we could not
// kill as one.
const SERVER = '/usr/lib/rabbitmq/bin/rabbitmq-server';

/** Whether this machine has the RabbitMQ server to start (Debian's rabbitmq-server); missing it fails CI. */
export function ownRabbitMqAvailable(): boolean {
  const available = existsSync(SERVER);
  if (!available && process.env.CI === 'true') throw new Error(`${SERVER} is missing: CI must run the broker tests`);
  return available;
}

const listening = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connectTcp(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });

export async function startOwnRabbitMq(): Promise<OwnRabbitMq> {
  const dir = mkdtempSync(join(tmpdir(), 'payforward-own-rabbitmq-'));
  const [port, distPort] = [await freePort(), await freePort()];
  mkdirSync(join(dir, 'mnesia'));
  mkdirSync(join(dir, 'log'));
  writeFileSync(join(dir, 'rabbitmq.conf'), `listeners.tcp.local = 127.0.0.1:${port}\nloopback_users = none\n`);
  writeFileSync(join(dir, 'enabled_plugins'), '[].\n');
  const env = {
    ...process.env,
    RABBITMQ_NODENAME: `payforward-test-${randomBytes(4).toString('hex')}@localhost`,
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(dir, 'log'),
    RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq.conf'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
    RABBITMQ_FEATURE_FLAGS_FILE: join(dir, 'feature_flags'),
    RABBITMQ_PID_FILE: join(dir, 'rabbitmq.pid'),
  };
  let child: ChildProcess | undefined;
  let output = '';
  const start = async () => {
    output = '';
    // Its own process group, so the shell script and the Erlang VM under it die together.
    child = spawn(SERVER, [], { env, cwd: dir, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (chunk) => (output += String(chunk)));
    child.stderr!.on('data', (chunk) => (output += String(chunk)));
    const started = child;
    await waitFor(
      async () => {
        if (started.exitCode !== null) throw new Error(`rabbitmq-server exited:\n${output}`);
        return listening(port);
      },
      60_000,
      `RabbitMQ on ${port}`,
    );
  };
  const kill = async () => {
    const running = child;
    child = undefined;
    if (!running?.pid || running.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    process.kill(-running.pid, 'SIGKILL');
    await exited;
    await waitFor(async () => !(await listening(port)), 20_000, 'RabbitMQ gone');
  };
  await start();
  return {
    url: `amqp://guest:guest@127.0.0.1:${port}`,
    kill,
    start,
    async remove() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
