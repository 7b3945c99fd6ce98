/**
 * The deployment artefacts in deploy/, checked offline: Docker, Kubernetes, Kong, Prometheus and Elasticsearch do
 * not run here. What this proves: every manifest parses (the Helm templates after rendering them with the small
 * renderer below, which understands only the subset of Helm's language the chart uses and throws on anything
 * else); probes and health checks name routes the app really answers; every environment variable the artefacts
 * give PayForward is one src/config.ts reads; ports, images, selectors and names agree across files; the metric
 * and label names in the alert rules, the Grafana dashboard and the prometheus-adapter rule exist in a real scrape
 * of the app; a real log line fits the Elasticsearch index template. What it does not prove: that Docker builds
 * the image, that Kong accepts its configuration or runs its Lua, that Kubernetes admits the objects, or that
 * PromQL evaluates — only `docker build`, `kong config parse`, `helm lint`/`kubeconform` and `promtool` can.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isIP } from 'node:net';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { collectDefaultMetrics } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { PRODUCTION_SECRETS } from '../src/bootstrap.js';
import { loadConfig } from '../src/config.js';
import { bootAppOnOwnDatabase, PLATFORM_KEY, type TestApp } from './helpers.js';
import { freePort, startServer, stopServer, waitFor, type ServerProcess } from './process.js';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const DEPLOY = join(ROOT, 'deploy');
const CHART = join(DEPLOY, 'helm/payforward');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const readYaml = (path: string) => parse(read(path), { merge: true });
const readJson = (path: string) => JSON.parse(read(path));

/** Variables Node itself reads (not PayForward's settings) that the README tells operators to set. */
const NODE_RUNTIME_VARIABLES = new Set(['NODE_EXTRA_CA_CERTS', 'NODE_OPTIONS']);

/** Every environment variable loadConfig reads, found by handing it an empty environment that records reads. */
function configVariables(): Set<string> {
  const names = new Set<string>();
  const env = new Proxy({} as NodeJS.ProcessEnv, {
    get(_target, name) {
      if (typeof name === 'string') names.add(name);
      return undefined;
    },
  });
  loadConfig(env);
  return names;
}

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}

// ---- A minimal Helm renderer: .Values/.Release/.Chart paths, quote, default, toYaml, nindent, indent,
// ---- if/else/end and {{- -}} trimming. Anything else throws, so the chart cannot drift past what is checked.

interface Scope {
  Values: any;
  Release: { Name: string; Namespace: string };
  Chart: { Name: string; Version: string; AppVersion: string };
}

function lookup(path: string, scope: Scope): unknown {
  let value: any = scope;
  for (const key of path.slice(1).split('.')) {
    if (value === undefined || value === null || !(key in value)) throw new Error(`${path}: no such value`);
    value = value[key];
  }
  return value;
}

function argument(text: string, scope: Scope): unknown {
  if (text.startsWith('.')) return lookup(text, scope);
  if (/^\d+$/.test(text)) return Number(text);
  if (/^".*"$/.test(text)) return JSON.parse(text);
  throw new Error(`unsupported template argument ${text}`);
}

const empty = (value: unknown) =>
  value === undefined ||
  value === null ||
  value === false ||
  value === 0 ||
  value === '' ||
  (Array.isArray(value) && value.length === 0) ||
  (typeof value === 'object' && Object.keys(value as object).length === 0);

const TEMPLATE_FUNCTIONS = new Set(['quote', 'default', 'toYaml', 'nindent', 'indent']);

function call(stage: string, scope: Scope, piped: unknown[]): unknown {
  const [head, ...rest] = stage.trim().split(/\s+/);
  if (!head.startsWith('.') && !TEMPLATE_FUNCTIONS.has(head)) throw new Error(`unsupported template function ${head}`);
  const args = [...rest.map((a) => argument(a, scope)), ...piped];
  if (head.startsWith('.') && args.length === 0) return lookup(head, scope);
  const indent = (text: string, n: number) =>
    text
      .split('\n')
      .map((line) => ' '.repeat(n) + line)
      .join('\n');
  switch (head) {
    case 'quote':
      return JSON.stringify(String(args[0]));
    case 'default':
      return empty(args[1]) ? args[0] : args[1];
    case 'toYaml':
      return stringify(args[0]).trimEnd();
    case 'nindent':
      return `\n${indent(String(args[1]), args[0] as number)}`;
    case 'indent':
      return indent(String(args[1]), args[0] as number);
    default:
      throw new Error(`unsupported template function ${head}`);
  }
}

function evaluate(pipeline: string, scope: Scope): unknown {
  return pipeline
    .split('|')
    .reduce<unknown>((piped, stage, i) => call(stage, scope, i === 0 ? [] : [piped]), undefined);
}

function renderTemplate(source: string, scope: Scope): string {
  const parts = source.split(/(\{\{-?\s*[\s\S]*?\s*-?\}\})/);
  for (let i = 1; i < parts.length; i += 2) {
    if (parts[i].startsWith('{{-')) parts[i - 1] = parts[i - 1].replace(/\s+$/, '');
    if (parts[i].endsWith('-}}')) parts[i + 1] = parts[i + 1].replace(/^\s+/, '');
  }
  const stack: { active: boolean; taken: boolean }[] = [];
  const active = () => stack.every((frame) => frame.active);
  let out = '';
  parts.forEach((part, i) => {
    if (i % 2 === 0) {
      if (active()) out += part;
      return;
    }
    const action = part.replace(/^\{\{-?\s*/, '').replace(/\s*-?\}\}$/, '');
    if (action.startsWith('if ')) {
      const taken = active() && !empty(evaluate(action.slice(3), scope));
      stack.push({ active: taken, taken });
    } else if (action === 'else') {
      const frame = stack[stack.length - 1];
      frame.active = !frame.taken;
    } else if (action === 'end') {
      if (!stack.pop()) throw new Error('end without if');
    } else if (active()) {
      const value = evaluate(action, scope);
      if (value === null || typeof value === 'object') throw new Error(`{{ ${action} }} is not a scalar`);
      out += String(value);
    }
  });
  if (stack.length) throw new Error('if without end');
  return out;
}

function renderChart(values: any = parse(readFileSync(join(CHART, 'values.yaml'), 'utf8'))) {
  const chart = parse(readFileSync(join(CHART, 'Chart.yaml'), 'utf8'));
  const scope: Scope = {
    Values: values,
    Release: { Name: 'pf', Namespace: 'payments' },
    Chart: { Name: chart.name, Version: chart.version, AppVersion: chart.appVersion },
  };
  return files(join(CHART, 'templates')).flatMap((path) =>
    parseAllDocuments(renderTemplate(readFileSync(path, 'utf8'), scope)).map((doc) => {
      if (doc.errors.length) throw new Error(`${relative(ROOT, path)}: ${doc.errors[0].message}`);
      return { path: relative(ROOT, path), object: doc.toJS() as any };
    }),
  );
}

// ---- PromQL, as far as names go: metric names, label matchers and grouping labels.

const PROMQL_WORDS = new Set(
  [
    'sum avg min max count topk bottomk quantile stddev count_values group by without on ignoring group_left',
    'group_right and or unless bool offset rate irate increase delta deriv histogram_quantile abs absent ceil',
    'floor round clamp clamp_min clamp_max time vector scalar label_replace avg_over_time max_over_time',
    'min_over_time sum_over_time count_over_time predict_linear sort sort_desc inf nan',
  ]
    .join(' ')
    .split(' '),
);

interface PromQlNames {
  metrics: string[];
  selectors: { metric: string | undefined; matchers: { label: string; op: string; value: string }[] }[];
  grouping: string[];
}

function promqlNames(expr: string): PromQlNames {
  let rest = expr.replace(/\[[^\]]*\]/g, ' ');
  const grouping: string[] = [];
  rest = rest.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g, (_all, _word, labels) => {
    grouping.push(
      ...String(labels)
        .split(',')
        .map((l) => l.trim())
        .filter(Boolean),
    );
    return ' ';
  });
  const selectors: PromQlNames['selectors'] = [];
  rest = rest.replace(/([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}/g, (_all, metric, body) => {
    const matchers = [...String(body).matchAll(/([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"/g)].map(
      ([, label, op, value]) => ({ label, op, value }),
    );
    selectors.push({ metric, matchers });
    return ` ${metric ?? ''} `;
  });
  const metrics = [...rest.matchAll(/(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*/g)]
    .map(([name]) => name)
    .filter((name) => !PROMQL_WORDS.has(name));
  return { metrics, selectors, grouping };
}

// ---- The manifests, read once.

const compose = readYaml('deploy/compose.yaml');
const kong = readYaml('deploy/kong/kong.yaml');
const values = readYaml('deploy/helm/payforward/values.yaml');
const chartObjects = renderChart(values);
const alerts = readYaml('deploy/monitoring/alerts.yaml');
const grafana = readJson('deploy/monitoring/grafana/payforward.json');
const adapter = readYaml('deploy/monitoring/prometheus-adapter-rules.yaml');
const prometheusK8s = readYaml('deploy/monitoring/prometheus.yml');
const prometheusCompose = readYaml('deploy/monitoring/prometheus-compose.yml');
const dockerfile = read('deploy/Dockerfile');

const objects = (kind: string) => chartObjects.map((o) => o.object).filter((o) => o?.kind === kind);
const deployment = (component: string) =>
  objects('Deployment').find((d) => d.metadata.labels['app.kubernetes.io/component'] === component);
/** Compose services that run the PayForward image, by name. */
const appServices = Object.entries<any>(compose.services).filter(([, s]) => s.image === 'payforward:latest');
const envFile = (path: string) =>
  read(path)
    .split('\n')
    .filter((line) => /^[A-Z_][A-Z0-9_]*=/.test(line))
    .map((line) => line.slice(0, line.indexOf('=')));
/** Final-stage Dockerfile instructions. */
const runtimeStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
const dockerEnv = [...runtimeStage.matchAll(/^\s*(?:ENV\s+)?([A-Z_][A-Z0-9_]*)=\S+/gm)].map(([, name]) => name);

const expressions = () => [
  ...alerts.groups.flatMap((g: any) => g.rules.map((r: any) => ({ where: `alert ${r.alert}`, expr: r.expr }))),
  ...grafana.panels.flatMap((p: any) => p.targets.map((t: any) => ({ where: `panel "${p.title}"`, expr: t.expr }))),
  ...adapter.rules.custom.map((r: any) => ({ where: 'prometheus-adapter rule', expr: r.seriesQuery })),
];

describe('deploy/ manifests', () => {
  it('every YAML and JSON file in deploy/ parses, the Helm templates after rendering', () => {
    const parsed = files(DEPLOY)
      .filter((path) => /\.(ya?ml|json)$/.test(path) && !path.includes('/templates/'))
      .map((path) => {
        const text = readFileSync(path, 'utf8');
        if (path.endsWith('.json')) JSON.parse(text);
        else for (const doc of parseAllDocuments(text)) expect(doc.errors, relative(ROOT, path)).toEqual([]);
        return relative(ROOT, path);
      });
    expect(parsed).toEqual(
      expect.arrayContaining([
        'deploy/compose.yaml',
        'deploy/kong/kong.yaml',
        'deploy/helm/payforward/Chart.yaml',
        'deploy/helm/payforward/values.yaml',
        'deploy/logging/filebeat.yml',
        'deploy/logging/index-template.json',
        'deploy/logging/ilm-policy.json',
        'deploy/monitoring/alerts.yaml',
        'deploy/monitoring/prometheus.yml',
        'deploy/monitoring/grafana/payforward.json',
      ]),
    );
    const kinds = chartObjects.map(({ object }) => `${object.apiVersion} ${object.kind}`).sort();
    expect(kinds).toEqual(
      [
        'apps/v1 Deployment',
        'apps/v1 Deployment',
        'autoscaling/v2 HorizontalPodAutoscaler',
        'batch/v1 Job',
        'networking.k8s.io/v1 Ingress',
        'networking.k8s.io/v1 NetworkPolicy',
        'networking.k8s.io/v1 NetworkPolicy',
        'policy/v1 PodDisruptionBudget',
        'policy/v1 PodDisruptionBudget',
        'v1 ConfigMap',
        'v1 Service',
        'v1 ServiceAccount',
      ].sort(),
    );
    for (const { path, object } of chartObjects) expect(object.metadata?.name, path).toMatch(/^pf(-[a-z]+)?$/);
    // The renderer's `if`: switched off, the Ingress, HPA and NetworkPolicies are not rendered at all.
    const off = renderChart({
      ...values,
      ingress: { ...values.ingress, enabled: false },
      api: { ...values.api, autoscaling: { ...values.api.autoscaling, enabled: false } },
      networkPolicy: { ...values.networkPolicy, enabled: false },
    }).map(({ object }) => object?.kind);
    expect(off).not.toContain('Ingress');
    expect(off).not.toContain('HorizontalPodAutoscaler');
    expect(off).not.toContain('NetworkPolicy');
    const fixed = renderChart({ ...values, api: { ...values.api, autoscaling: { enabled: false } } });
    const apiFixed = fixed
      .map(({ object }) => object)
      .find((o) => o.metadata.name === 'pf-api' && o.kind === 'Deployment');
    expect(apiFixed.spec.replicas).toBe(values.api.replicas);
    expect(() => renderTemplate('{{ .Values.nope }}', { Values: {} } as Scope)).toThrow(/no such value/);
    expect(() => renderTemplate('{{ include "x" . }}', { Values: {} } as Scope)).toThrow(/unsupported/);
  });

  it('the Dockerfile builds in stages and runs the production bundle as a non-root user', () => {
    const stages = [...dockerfile.matchAll(/^FROM\s+\S+\s+AS\s+(\S+)/gm)].map(([, name]) => name);
    expect(stages).toEqual(['build', 'deps', 'runtime']);
    const stage = (name: string) => {
      const start = dockerfile.indexOf(`AS ${name}\n`);
      const next = dockerfile.indexOf('\nFROM ', start);
      return dockerfile.slice(start, next === -1 ? undefined : next);
    };
    expect(stage('build')).toMatch(/RUN npm ci\b(?!.*--omit)/);
    expect(stage('build')).toMatch(/RUN npm run build/);
    expect(stage('deps')).toMatch(/RUN npm ci --omit=dev/);
    expect(runtimeStage).toMatch(/COPY --from=deps \S* ?\/app\/node_modules/);
    expect(runtimeStage).toMatch(/COPY --from=build \S* ?\/app\/dist/);
    expect(runtimeStage).not.toMatch(/npm (ci|install)/);
    const user = /^USER\s+(\S+)/m.exec(runtimeStage)?.[1];
    expect(user).toBeDefined();
    expect(user!.split(':')[0]).not.toMatch(/^(root|0)$/);
    // `npm run build` writes what the entrypoint runs (dist/main.js) and the files it reads beside it.
    const build = JSON.parse(read('package.json')).scripts.build as string;
    for (const output of ['dist/main.js', 'dist/migrations', 'dist/fraud-model', 'dist/static'])
      expect(build).toContain(output);
    expect(build).toContain('dashboard:build');
    expect(runtimeStage).toMatch(/ENTRYPOINT \[.*"dist\/main\.js"\]/);
    expect(/^CMD \["api"\]/m.test(runtimeStage)).toBe(true);
    expect(runtimeStage).toMatch(/HEALTHCHECK [\s\S]*\/health/);
    // The patch the postinstall applies is in the context of both npm ci stages, and .dockerignore keeps it.
    expect(stage('build')).toContain('COPY patches');
    expect(stage('deps')).toContain('COPY patches');
    expect(read('.dockerignore')).not.toMatch(/^patches/m);
  });

  it('compose and Helm run only commands main.ts knows, from one image', () => {
    const commands = JSON.parse(/const commands = (\[[^\]]*\])/.exec(read('src/main.ts'))![1].replace(/'/g, '"'));
    const used = [
      ...appServices.map(([, s]) => s.command[0]),
      ...objects('Deployment').map((d) => d.spec.template.spec.containers[0].args[0]),
      ...objects('Job').map((j) => j.spec.template.spec.containers[0].args[0]),
    ];
    expect(new Set(used)).toEqual(new Set(['api', 'worker', 'migrate']));
    for (const command of used) expect(commands).toContain(command);
    expect(appServices.map(([name]) => name).sort()).toEqual(['api-1', 'api-2', 'migrate', 'worker']);
    for (const [, service] of appServices)
      expect(service.build).toEqual({ context: '..', dockerfile: 'deploy/Dockerfile' });
    const chartVersion = parse(read('deploy/helm/payforward/Chart.yaml')).appVersion;
    const images = [
      ...objects('Deployment').map((d) => d.spec.template.spec.containers[0].image),
      ...objects('Job').map((j) => j.spec.template.spec.containers[0].image),
    ];
    expect(new Set(images)).toEqual(new Set([`${values.image.repository}:${chartVersion}`]));
  });

  it('every environment variable given to PayForward is one src/config.ts reads', () => {
    const known = configVariables();
    expect(known).toContain('DATABASE_URL');
    expect(known).toContain('SIM_BETA_LATENCY_MS');
    const given: { where: string; name: string }[] = [
      ...dockerEnv.map((name) => ({ where: 'Dockerfile ENV', name })),
      ...appServices.flatMap(([service, s]) =>
        Object.keys(s.environment ?? {}).map((name) => ({ where: `compose ${service}`, name })),
      ),
      ...envFile('deploy/env/payforward.env.example').map((name) => ({ where: 'payforward.env.example', name })),
      ...Object.keys(values.config).map((name) => ({ where: 'values.yaml config', name })),
      ...[...objects('Deployment'), ...objects('Job')].flatMap((o) =>
        (o.spec.template.spec.containers[0].env ?? []).map((e: any) => ({ where: o.metadata.name, name: e.name })),
      ),
    ];
    expect(given.length).toBeGreaterThan(30);
    const unknown = given.filter(({ name }) => !known.has(name) && !NODE_RUNTIME_VARIABLES.has(name));
    expect(unknown).toEqual([]);
    // Production refuses to start without these: the env file every process reads names each of them.
    const secrets = envFile('deploy/env/payforward.env.example');
    for (const { name } of PRODUCTION_SECRETS) expect(secrets).toContain(name);
    // No secret is written inline into compose or the chart's values.
    const inline = [...appServices.flatMap(([, s]) => Object.keys(s.environment ?? {})), ...Object.keys(values.config)];
    for (const { name } of PRODUCTION_SECRETS) expect(inline).not.toContain(name);
    expect(inline).not.toContain('DATABASE_URL');
    for (const [, service] of appServices) expect(service.env_file).toEqual(['env/payforward.env']);
    for (const o of [...objects('Deployment'), ...objects('Job')])
      expect(o.spec.template.spec.containers[0].envFrom).toContainEqual({ secretRef: { name: values.secretName } });
    // ConfigMap data must be strings, or the API server refuses it.
    for (const value of Object.values(objects('ConfigMap')[0].data)) expect(typeof value).toBe('string');
  });

  it('ports agree: API and metrics ports, Kong upstream, Service, Ingress, NetworkPolicy, scrape targets', () => {
    const apiPort = Number(compose['x-api'].environment.PORT);
    const metricsPort = Number(compose['x-api'].environment.METRICS_PORT);
    expect(Number(compose.services.worker.environment.METRICS_PORT)).toBe(metricsPort);
    const exposed = [...dockerfile.matchAll(/^EXPOSE (.+)$/gm)].flatMap(([, ports]) => ports.split(/\s+/).map(Number));
    expect(exposed).toEqual(expect.arrayContaining([apiPort, metricsPort]));
    expect(Number(/PORT=(\d+)/.exec(runtimeStage)?.[1])).toBe(apiPort);

    // Kong balances over exactly the compose services that run `api`, on their PORT.
    const apiServices = appServices.filter(([, s]) => s.command[0] === 'api').map(([name]) => name);
    const upstream = kong.upstreams.find((u: any) => u.name === 'payforward-api');
    expect(upstream.targets.map((t: any) => t.target).sort()).toEqual(apiServices.map((s) => `${s}:${apiPort}`).sort());
    expect(kong.services[0].host).toBe(upstream.name);
    expect(kong.services[0].port).toBe(apiPort);
    for (const [name] of appServices.filter(([, s]) => s.command[0] === 'api'))
      expect(compose.services[name].expose).toContain(String(apiPort));
    expect(Object.keys(compose.services).filter((name) => compose.services[name].ports?.length)).toEqual(
      expect.not.arrayContaining(appServices.map(([name]) => name)),
    );

    // Compose's Prometheus scrapes each app service on its METRICS_PORT.
    const targets = prometheusCompose.scrape_configs[0].static_configs.flatMap((c: any) => c.targets);
    expect(targets.sort()).toEqual(
      appServices
        .filter(([, s]) => s.command[0] !== 'migrate')
        .map(([name]) => `${name}:${metricsPort}`)
        .sort(),
    );

    // Helm: container ports from the same settings; Service, Ingress and NetworkPolicy refer to them by name.
    const api = deployment('api');
    const worker = deployment('worker');
    const portsOf = (d: any) =>
      Object.fromEntries(d.spec.template.spec.containers[0].ports.map((p: any) => [p.name, p]));
    expect(portsOf(api).http.containerPort).toBe(Number(values.config.PORT));
    expect(portsOf(api).metrics.containerPort).toBe(Number(values.config.METRICS_PORT));
    expect(portsOf(worker).metrics.containerPort).toBe(Number(values.config.METRICS_PORT));
    expect(Number(values.config.PORT)).toBe(apiPort);
    for (const d of [api, worker])
      expect(Number(d.spec.template.metadata.annotations['prometheus.io/port'])).toBe(portsOf(d).metrics.containerPort);
    const service = objects('Service')[0];
    expect(service.spec.selector).toEqual(api.spec.selector.matchLabels);
    expect(api.spec.template.metadata.labels).toMatchObject(service.spec.selector);
    for (const port of service.spec.ports) expect(portsOf(api)).toHaveProperty(port.targetPort);
    const backend = objects('Ingress')[0].spec.rules[0].http.paths[0].backend.service;
    expect(backend.name).toBe(service.metadata.name);
    expect(service.spec.ports.map((p: any) => p.name)).toContain(backend.port.name);
    expect(objects('Ingress')[0].spec.tls[0].hosts).toEqual([values.ingress.host]);
    for (const policy of objects('NetworkPolicy')) {
      const target = [api, worker].find(
        (d) => JSON.stringify(d.spec.selector) === JSON.stringify(policy.spec.podSelector),
      );
      expect(target, policy.metadata.name).toBeDefined();
      for (const rule of policy.spec.ingress)
        for (const port of rule.ports) expect(portsOf(target)).toHaveProperty(port.port);
      // Only DNS, the data services and mail (and, for the worker, webhooks) on the way out.
      const egressPorts = policy.spec.egress.flatMap((r: any) => r.ports.map((p: any) => p.port));
      const allowed = [53, 5432, 6379, 5671, 5672, 465, 587, ...(target === worker ? [443, 80] : [])];
      for (const port of egressPorts) expect(allowed).toContain(port);
    }
    // The API port is open only to the ingress controller's pods.
    const apiPolicy = objects('NetworkPolicy').find((p) => p.metadata.name === 'pf-api');
    const httpRule = apiPolicy.spec.ingress.find((r: any) => r.ports.some((p: any) => p.port === 'http'));
    expect(httpRule.from).toEqual(values.networkPolicy.apiFrom);
    expect(httpRule.from.length).toBeGreaterThan(0);
  });

  it('the Helm objects fit together: HPA, PDBs, probes, security context', () => {
    const api = deployment('api');
    const worker = deployment('worker');
    const hpa = objects('HorizontalPodAutoscaler')[0];
    // The HPA owns the API's replica count: a Deployment that also sets it would be reset on every upgrade.
    expect(api.spec.replicas).toBeUndefined();
    expect(worker.spec.replicas).toBe(values.worker.replicas);
    expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: api.metadata.name });
    expect(hpa.spec.metrics.map((m: any) => m.type).sort()).toEqual(['Pods', 'Resource']);
    const pods = hpa.spec.metrics.find((m: any) => m.type === 'Pods').pods;
    expect(pods.metric.name).toBe(adapter.rules.custom[0].name.as);
    expect(typeof pods.target.averageValue).toBe('string');
    for (const pdb of objects('PodDisruptionBudget')) {
      const target = [api, worker].find((d) => JSON.stringify(d.spec.selector) === JSON.stringify(pdb.spec.selector));
      expect(target, pdb.metadata.name).toBeDefined();
    }
    const container = (d: any) => d.spec.template.spec.containers[0];
    expect(container(api).livenessProbe.httpGet).toEqual({ path: '/health', port: 'http' });
    expect(container(api).readinessProbe.httpGet).toEqual({ path: '/ready', port: 'http' });
    expect(container(worker).livenessProbe.httpGet).toEqual({ path: '/metrics', port: 'metrics' });
    for (const d of [...objects('Deployment'), ...objects('Job')]) {
      const pod = d.spec.template.spec;
      expect(pod.securityContext.runAsNonRoot).toBe(true);
      expect(pod.securityContext.runAsUser).toBeGreaterThan(0);
      expect(pod.automountServiceAccountToken).toBe(false);
      expect(container(d).securityContext).toMatchObject({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'] },
      });
      // The read-only root keeps /tmp writable (DATA_DIR lives there) through an emptyDir.
      expect(container(d).volumeMounts).toContainEqual({ name: 'tmp', mountPath: '/tmp' });
      expect(values.config.DATA_DIR.startsWith('/tmp/')).toBe(true);
      expect(container(d).resources.requests.cpu).toBeDefined();
    }
  });

  it("Kong: https only with HSTS, its limits above the API's own, request ids kept, /metrics not exposed", () => {
    const defaults = loadConfig({});
    const plugin = (name: string) => kong.plugins.find((p: any) => p.name === name);
    const size = plugin('request-size-limiting').config;
    const unit = { bytes: 1, kilobytes: 1024, megabytes: 1024 * 1024 }[size.size_unit as 'bytes'];
    expect(size.allowed_payload_size * unit).toBeGreaterThan(defaults.bodyLimitBytes);
    const rate = plugin('rate-limiting').config;
    expect(rate.second).toBeGreaterThan(defaults.rateLimitPerKey * (1000 / defaults.rateLimitWindowMs));
    expect(rate.second).toBeGreaterThanOrEqual(defaults.rateLimitPerAddress * (1000 / defaults.rateLimitWindowMs));
    expect(rate.limit_by).toBe('header');
    // The header the rate limit keys on is the one the pre-function sets (and clears when the client sent it).
    const lua = plugin('pre-function').config.access.join('\n');
    expect(lua).toContain(`set_header("${rate.header_name}"`);
    expect(lua).toContain(`clear_header("${rate.header_name}"`);
    // One request id end to end: the header the API trusts (REQUEST_ID_HEADER) is the one Kong sets, echoes and logs.
    const apiRequestId = /reply\.header\('([^']+)', request\.id\)/.exec(read('src/app.ts'))![1];
    expect(apiRequestId).toBe('request-id');
    const trusted = loadConfig({ REQUEST_ID_HEADER: compose['x-api'].environment.REQUEST_ID_HEADER }).requestIdHeader!;
    expect(trusted).toBe('x-request-id');
    expect(plugin('correlation-id').config.header_name.toLowerCase()).toBe(trusted);
    expect(plugin('correlation-id').config.echo_downstream).toBe(true);
    expect(plugin('file-log').config.custom_fields_by_lua.request_id).toContain(`"${apiRequestId}"`);
    // The pre-function replaces whatever a client sent with an id in the API's format, or the API would not keep it:
    // req_, 10 digits of time and 14 random ones, in newId's alphabet.
    const minting = plugin('pre-function').config.access.find((code: string) => code.includes('X-Request-Id'));
    expect(minting).toMatch(new RegExp(`set_header\\("${trusted}", "req_" \\.\\.`, 'i'));
    const alphabet = /const ALPHABET = '([^']+)'/.exec(read('src/lib/ids.ts'))![1];
    expect(minting).toContain(`local alphabet = "${alphabet}"`);
    expect(minting).toMatch(/for i = 10, 1, -1 do/);
    expect(minting).toMatch(/for i = 1, 14 do[\s\S]*math\.random\(0, 31\)/);
    // Behind the ingress (Helm) nothing replaces a client's X-Request-Id: the API mints its own there.
    expect(values.config.REQUEST_ID_HEADER).toBeUndefined();
    expect(plugin('file-log').config.custom_fields_by_lua['request.headers.authorization']).toBe('return nil');
    expect(plugin('response-transformer').config.add.headers.join()).toMatch(/^Strict-Transport-Security: max-age=\d+/);
    const routes = kong.services[0].routes;
    expect(routes.find((r: any) => r.name === 'api').protocols).toEqual(['https']);
    const internal = routes.find((r: any) => r.paths.includes('/metrics'));
    expect(internal.plugins[0]).toMatchObject({ name: 'request-termination', config: { status_code: 404 } });
    expect(JSON.parse(internal.plugins[0].config.body).error).toMatchObject({ type: 'invalid_request_error' });
  });

  it('logs: Filebeat writes to the data stream the index template declares, under a retention policy', () => {
    const filebeat = readYaml('deploy/logging/filebeat.yml');
    const template = readJson('deploy/logging/index-template.json');
    const ilm = readJson('deploy/logging/ilm-policy.json');
    const index = filebeat['output.elasticsearch'].index;
    expect(template.index_patterns.some((p: string) => new RegExp(`^${p.replace('*', '.*')}$`).test(index))).toBe(true);
    expect(template.data_stream).toEqual({});
    expect(template.template.settings['index.lifecycle.name']).toBe(index);
    expect(ilm.policy.phases.hot.actions.rollover).toBeDefined();
    expect(ilm.policy.phases.delete.actions.delete).toEqual({});
    const condition = filebeat['filebeat.autodiscover'].providers[0].templates[0].condition.equals;
    expect(Object.values(condition)).toEqual([deployment('api').metadata.labels['app.kubernetes.io/name']]);
  });
});

describe('deploy/ manifests against the running app', () => {
  let t: TestApp;
  let metricsPort: number;
  let scrape: string;
  const METRICS_TOKEN = 'deploy-manifests-metrics-token-0123456789';

  beforeAll(async () => {
    metricsPort = await freePort();
    t = await bootAppOnOwnDatabase('deploy_manifests', {
      METRICS_TOKEN,
      METRICS_PORT: String(metricsPort),
      LOG_LEVEL: 'debug',
    });
    // Production processes collect Node's process metrics (createPlatform's default); bootApp turns them off.
    collectDefaultMetrics({ register: t.platform.metrics.registry });
    const response = await t.app.inject({ url: '/metrics', headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(response.statusCode).toBe(200);
    scrape = response.body;
    // Its own database, migrated from scratch: under a loaded shared machine that alone can pass a minute.
  }, 180_000);
  afterAll(async () => {
    await t?.close();
  });

  it('every probe and health check names a route the app answers with 200', async () => {
    const api = deployment('api').spec.template.spec.containers[0];
    const worker = deployment('worker').spec.template.spec.containers[0];
    const onApiPort = [
      api.startupProbe.httpGet.path,
      api.livenessProbe.httpGet.path,
      api.readinessProbe.httpGet.path,
      kong.upstreams[0].healthchecks.active.http_path,
      /HEALTHCHECK[\s\S]*?'(\/[a-z]+)'/.exec(dockerfile)![1],
    ];
    expect(new Set(onApiPort)).toEqual(new Set(['/health', '/ready']));
    for (const path of onApiPort) expect((await t.app.inject({ url: path })).statusCode, path).toBe(200);
    const composeCheck = compose.services.worker.healthcheck.test.join(' ');
    const onMetricsPort = [worker.livenessProbe.httpGet.path, /127\.0\.0\.1:\d+(\/[a-z]+)/.exec(composeCheck)![1]];
    expect(composeCheck).toContain(`:${compose.services.worker.environment.METRICS_PORT}/`);
    for (const path of onMetricsPort) {
      const response = await fetch(`http://127.0.0.1:${metricsPort}${path}`);
      expect(response.status, path).toBe(200);
      expect(await response.text()).toContain('http_request_duration_seconds');
    }
    // What Kong refuses to route (/metrics) is refused by the API port without the token too.
    expect((await t.app.inject({ url: '/metrics' })).statusCode).toBe(401);
  });

  it('alert rules, the Grafana dashboard and the adapter rule name metrics and labels the app exports', () => {
    const families = new Map<string, string>();
    for (const [, name, type] of scrape.matchAll(/^# TYPE (\S+) (\S+)$/gm)) families.set(name, type);
    const labelNames = new Map<string, string[]>(
      t.platform.metrics.registry.getMetricsAsArray().map((m: any) => [m.name, m.labelNames ?? []]),
    );
    const family = (series: string) => {
      if (families.has(series)) return series;
      const base = series.replace(/_(bucket|sum|count)$/, '');
      return families.get(base) === 'histogram' || families.get(base) === 'summary' ? base : undefined;
    };
    const relabelled = prometheusK8s.scrape_configs[0].relabel_configs
      .map((r: any) => r.target_label)
      .filter((l: string | undefined) => l && !l.startsWith('__'));
    const composeLabels = prometheusCompose.scrape_configs[0].static_configs.flatMap((c: any) => Object.keys(c.labels));
    const targetLabels = new Set(['job', 'instance', ...relabelled, ...composeLabels]);
    expect(targetLabels).toEqual(new Set(['job', 'instance', 'namespace', 'pod', 'component']));
    const workerLoops = [...read('src/workers/index.ts').matchAll(/name: '([a-z-]+)'/g)].map(([, name]) => name);
    expect(workerLoops).toContain('settlement');

    const problems: string[] = [];
    const checked = new Set<string>();
    for (const { where, expr } of expressions()) {
      const { metrics, selectors, grouping } = promqlNames(expr);
      const inExpr = [...metrics, ...selectors.map((s) => s.metric).filter((m): m is string => Boolean(m))];
      if (!inExpr.length) problems.push(`${where}: no metric in ${expr}`);
      const labelsHere = new Set<string>(targetLabels);
      for (const series of inExpr) {
        if (series === 'up') continue;
        const name = family(series);
        if (!name) {
          problems.push(`${where}: ${series} is not in /metrics`);
          continue;
        }
        checked.add(name);
        for (const label of labelNames.get(name) ?? []) labelsHere.add(label);
        if (series.endsWith('_bucket')) labelsHere.add('le');
      }
      for (const { metric, matchers } of selectors) {
        const own = new Set([...targetLabels, ...(labelNames.get(family(metric ?? '') ?? '') ?? [])]);
        for (const { label, value } of matchers) {
          if (metric && metric !== 'up' && !own.has(label)) problems.push(`${where}: ${metric} has no label ${label}`);
          if (label === 'worker')
            for (const loop of value.split('|'))
              if (!workerLoops.includes(loop)) problems.push(`${where}: no worker loop named ${loop}`);
          if (label === 'route' && !t.app.hasRoute({ method: 'GET', url: value }))
            problems.push(`${where}: no route ${value}`);
        }
      }
      for (const label of grouping)
        if (!labelsHere.has(label)) problems.push(`${where}: no label ${label} to group by`);
    }
    expect(problems).toEqual([]);
    // The brief's five alerts and the dashboard cover the application's own families, not only Node's.
    for (const name of [
      'http_request_duration_seconds',
      'webhook_delivery_lag_seconds',
      'webhook_queue_depth',
      'fraud_review_backlog',
      'worker_item_failures_total',
      'payments_total',
    ])
      expect(checked).toContain(name);
    // And the checker itself finds a name that does not exist, a label a metric lacks and a loop that is not there.
    expect(promqlNames('sum by (le) (rate(nope_bucket{a="b"}[5m])) / up').metrics).toEqual(['nope_bucket', 'up']);
    expect(promqlNames('sum by (le) (rate(nope_bucket{a="b"}[5m]))').selectors[0]).toEqual({
      metric: 'nope_bucket',
      matchers: [{ label: 'a', op: '=', value: 'b' }],
    });
    expect(family('nope_total')).toBeUndefined();
  });

  it("a real log line fits the index template's explicit mappings", async () => {
    const response = await t.app.inject({ url: '/v1/payments', headers: { authorization: `Bearer ${PLATFORM_KEY}x` } });
    expect(response.statusCode).toBe(401);
    const template = readJson('deploy/logging/index-template.json');
    const mapped = new Map<string, string>();
    const walk = (properties: Record<string, any>, prefix: string) => {
      for (const [key, mapping] of Object.entries(properties))
        if (mapping.properties) walk(mapping.properties, `${prefix}${key}.`);
        else mapped.set(`${prefix}${key}`, mapping.type);
    };
    walk(template.template.mappings.properties, '');
    const flat = (value: any, prefix = ''): [string, unknown][] =>
      Object.entries(value).flatMap(([key, v]) =>
        v && typeof v === 'object' && !Array.isArray(v) ? flat(v, `${prefix}${key}.`) : [[`${prefix}${key}`, v]],
      );
    const fits: Record<string, (v: unknown) => boolean> = {
      date: (v) => typeof v === 'string' && !Number.isNaN(Date.parse(v)),
      keyword: (v) => typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean',
      match_only_text: (v) => typeof v === 'string',
      long: (v) => Number.isInteger(v),
      short: (v) => Number.isInteger(v) && Math.abs(v as number) < 32768,
      float: (v) => typeof v === 'number',
      ip: (v) => typeof v === 'string' && isIP(v) !== 0,
    };
    const lines = t.logs.map((line) => JSON.parse(line));
    const requestLine = lines.find((l) => l.req?.url === '/v1/payments');
    expect(requestLine).toBeDefined();
    const seen = new Set<string>();
    const misfits: string[] = [];
    for (const line of lines)
      for (const [path, value] of flat(line)) {
        const type = mapped.get(path);
        if (!type) continue;
        seen.add(path);
        if (!fits[type](value)) misfits.push(`${path}=${JSON.stringify(value)} is not a ${type}`);
      }
    expect(misfits).toEqual([]);
    for (const path of ['@timestamp', 'log.level', 'message', 'ecs.version', 'request_id', 'req.ip', 'res.statusCode'])
      expect(seen).toContain(path);
  });

  it('the worker process serves its metrics on METRICS_PORT, where compose and Helm probe and scrape it', async () => {
    const port = await freePort();
    const dataDir = mkdtempSync(join(tmpdir(), 'payforward-deploy-worker-'));
    let worker: ServerProcess | undefined;
    try {
      worker = await startServer('worker', {
        DATABASE_URL: t.adminUrl,
        PORT: String(await freePort()),
        METRICS_PORT: String(port),
        PLATFORM_API_KEY: PLATFORM_KEY,
        JWT_SECRET: 'deploy-manifests-jwt-secret-0123456789',
        SEED_DEMO_TENANT: 'false',
        LOG_LEVEL: 'warn',
        DATA_DIR: dataDir,
      });
      const body = await waitFor(
        async () => {
          const response = await fetch(`http://127.0.0.1:${port}/metrics`);
          const text = response.ok ? await response.text() : '';
          // A gauge the worker's own loop sets (every 5 s), not only declared: this is the worker's registry.
          return /^webhook_queue_depth \d/m.test(text) && text;
        },
        60_000,
        "the worker's metrics",
      );
      expect(body).toMatch(/^# TYPE worker_item_failures_total counter$/m);
      expect(body).toMatch(/^# TYPE fraud_review_backlog gauge$/m);
    } finally {
      await stopServer(worker, 'SIGTERM');
      rmSync(dataDir, { recursive: true, force: true });
    }
    // Starting the worker from source (tsx) takes 10–40 s on the shared 2-core machine.
  }, 150_000);
});
