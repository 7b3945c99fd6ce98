import type { FastifyBaseLogger } from 'fastify';
import { inScope, type Scope, type Sql, type Tx } from '../../db/index.js';
import { NotificationListener } from '../../http/notification-listener.js';
import type { Metrics } from '../../http/metrics.js';
import { insertRows, type Columns } from '../../db/unnest.js';
import { newId } from '../../lib/ids.js';
import { buyerAddress, ELEVATED_AT, HIGHEST_AT, ipCountry, loadShippedModel, scoreRisk } from './model/index.js';
import { VELOCITY_FIELDS, type RiskScore, type VelocitySnapshot } from './model/signals.js';
import {
  claimDefaults,
  loadConfiguration,
  type FraudAction,
  type ListItemRow,
  type ListItemType,
  type ListRow,
  type RuleRow,
} from './repo.js';
import {
  activation,
  compileRule,
  normalizeListValue,
  RuleLists,
  type CompiledRule,
  type DecisionInputs,
} from './rules.js';
import type { FraudDetails, FraudOutcome } from './schemas.js';
import type { VelocityStore } from './velocity.js';

/** The card as the decision sees it; the number only picks the test cards and never leaves this module. */
export interface DecisionCard {
  number: string;
  bin: string | null;
  brand: string;
  country: string | null;
  funding: string;
  fingerprint: string;
}

export interface DecisionRequest {
  paymentId: string;
  /** Names this decision for the velocity store: asked again under the same name, it counts once. */
  decisionKey: string;
  amount: number;
  currency: string;
  customer: string | null;
  card: DecisionCard;
  details: FraudDetails | null;
  at: Date;
}

/**
 * What is stored on the payment beside the outcome: the inputs, for backtests and analysts. The velocity features are
 * an array in VELOCITY_FIELDS order, not an object: their names were 700 of the inputs' 1,000 bytes on every payment
 * row (see the README's fraud on/off figures). Rows decided before this format hold the named object.
 */
export type StoredInputs = Omit<DecisionInputs, 'velocity'> & {
  velocity: number[] | VelocitySnapshot;
  shadow_matches: { id: string; name: string }[];
};

function storedInputs(inputs: DecisionInputs, shadow: StoredInputs['shadow_matches']): StoredInputs {
  return { ...inputs, velocity: VELOCITY_FIELDS.map((field) => inputs.velocity[field]), shadow_matches: shadow };
}

/** Stored inputs as the decision saw them (either storage format). */
export function decisionInputs(stored: StoredInputs): DecisionInputs {
  const { velocity, ...rest } = stored;
  if (!Array.isArray(velocity)) return { ...rest, velocity };
  const named = {} as VelocitySnapshot;
  VELOCITY_FIELDS.forEach((field, i) => (named[field] = velocity[i] ?? 0));
  return { ...rest, velocity: named };
}

export interface FraudDecision {
  outcome: FraudOutcome;
  inputs: StoredInputs;
  /** The block lists the payment's values are on (whatever the decision): each hit opens a case. */
  listHits: string[];
}

interface CachedRule {
  row: RuleRow;
  compiled: CompiledRule;
}

interface TenantConfiguration {
  rules: CachedRule[];
  lists: RuleLists;
  allowLists: { row: ListRow; values: Set<string> }[];
  blockLists: { row: ListRow; values: Set<string> }[];
}

const TEST_CARD = {
  fraudulent: '4100000000000019',
  elevated: '4000000000009235',
  highest: '4000000000004954',
};

/**
 * Test mode's risk test cards (Stripe's numbers): their score is set to a level, so that an
 * integration can see an elevated or highest-risk outcome on demand (mid-band scores, whatever the
 * model's thresholds). Reasons stay the model's.
 */
const TEST_RISK = new Map<string, Pick<RiskScore, 'riskScore' | 'riskLevel'>>([
  [TEST_CARD.elevated, { riskScore: Math.round((ELEVATED_AT + HIGHEST_AT) / 2), riskLevel: 'elevated' }],
  [TEST_CARD.highest, { riskScore: Math.round((HIGHEST_AT + 100) / 2), riskLevel: 'highest' }],
]);
export const RISK_TEST_CARDS = [...TEST_RISK.keys()];

const LIST_DEFAULTS: { name: string; item_type: ListItemType; kind: 'block' | 'allow' }[] = [
  { name: 'blocked_cards', item_type: 'card_fingerprint', kind: 'block' },
  { name: 'blocked_bins', item_type: 'card_bin', kind: 'block' },
  { name: 'blocked_emails', item_type: 'email', kind: 'block' },
  { name: 'blocked_ips', item_type: 'ip_address', kind: 'block' },
  { name: 'blocked_countries', item_type: 'country', kind: 'block' },
  { name: 'blocked_customers', item_type: 'customer', kind: 'block' },
  { name: 'allowed_cards', item_type: 'card_fingerprint', kind: 'allow' },
  { name: 'allowed_emails', item_type: 'email', kind: 'allow' },
  { name: 'allowed_customers', item_type: 'customer', kind: 'allow' },
];

/** The default rule pack every tenant mode starts with; each can be edited, disabled or deleted. */
export const DEFAULT_RULES: Pick<RuleRow, 'name' | 'expression' | 'action' | 'priority'>[] = [
  {
    name: 'Block listed values',
    expression:
      "lists.contains('blocked_cards', card.fingerprint) || lists.contains('blocked_bins', card.bin) || " +
      "lists.contains('blocked_emails', email) || lists.contains('blocked_ips', ip.address) || " +
      "lists.contains('blocked_countries', ip.country) || lists.contains('blocked_customers', customer)",
    action: 'block',
    priority: 10,
  },
  // By default the score acts on payments that carry the buyer's IP address; server-to-server payments
  // (none) are left to the lists and velocity rules, and a tenant that wants the score to act on them
  // too edits these two rules.
  {
    name: 'Block highest risk',
    expression: "risk_level == 'highest' && ip.address != ''",
    action: 'block',
    priority: 20,
  },
  {
    name: 'Block card testing',
    expression: '(amount <= 500 && velocity.card_count_1h >= 5) || velocity.ip_distinct_cards_1h >= 10',
    action: 'block',
    priority: 30,
  },
  {
    name: '3-D Secure on a country mismatch above 1,000.00',
    expression: "amount >= 100000 && ip.country != '' && card.country != '' && ip.country != card.country",
    action: 'request_3ds',
    priority: 40,
  },
  {
    name: 'Review elevated risk',
    expression: "risk_level == 'elevated' && ip.address != ''",
    action: 'review',
    priority: 50,
  },
];

const LIST_COLUMNS: Columns<ListRow> = [
  ['id', 'text'],
  ['tenant_id', 'text'],
  ['livemode', 'boolean'],
  ['name', 'text'],
  ['item_type', 'text'],
  ['kind', 'text'],
  ['created_at', 'timestamptz'],
];
export const LIST_ITEM_COLUMNS: Columns<ListItemRow> = [
  ['id', 'text'],
  ['tenant_id', 'text'],
  ['livemode', 'boolean'],
  ['list_id', 'text'],
  ['value', 'text'],
  ['created_at', 'timestamptz'],
];
export const RULE_COLUMNS: Columns<RuleRow> = [
  ['id', 'text'],
  ['tenant_id', 'text'],
  ['livemode', 'boolean'],
  ['name', 'text'],
  ['expression', 'text'],
  ['action', 'text'],
  ['priority', 'integer'],
  ['enabled', 'boolean'],
  ['shadow', 'boolean'],
  ['created_at', 'timestamptz'],
  ['updated_at', 'timestamptz'],
];

const FRAUD_CONFIG_CHANNEL = 'fraud_config_changed';
const scopeKey = (scope: Scope) => `${scope.tenantId}:${scope.livemode ? 't' : 'f'}`;

/** Which decision input a list of each type is matched against. */
const LIST_VALUE: Record<ListItemType, (inputs: DecisionInputs) => string> = {
  card_fingerprint: (i) => i.card.fingerprint,
  card_bin: (i) => i.card.bin,
  email: (i) => i.email,
  ip_address: (i) => i.ip.address,
  country: (i) => i.ip.country,
  customer: (i) => i.customer,
};

function listHits(lists: TenantConfiguration['blockLists'], inputs: DecisionInputs): string[] {
  const hits: string[] = [];
  for (const { row, values } of lists) {
    if (values.size === 0) continue;
    const value = LIST_VALUE[row.item_type](inputs);
    if (value !== '' && values.has(normalizeListValue(value))) hits.push(row.name);
  }
  return hits;
}

/**
 * The fraud decision on the payment path. Rules are compiled once per tenant mode and cached with
 * its lists until a change is announced (LISTEN/NOTIFY, as API keys are); the velocity read and
 * record is one store call (one Redis round trip); the risk score is an in-process tree walk.
 */
export class FraudEngine {
  private readonly cache = new Map<string, Promise<TenantConfiguration>>();
  private readonly model = loadShippedModel();
  private readonly changes?: NotificationListener;
  /** False while the change listener is down: then nothing is cached, since no change would arrive. */
  private caching = true;
  private log?: FastifyBaseLogger;

  constructor(
    private readonly sql: Sql,
    private readonly velocity: VelocityStore,
    private readonly metrics: Metrics,
    private readonly fingerprint: (pan: string, tenantId: string) => string,
    listenUrl?: string,
  ) {
    if (listenUrl)
      this.changes = new NotificationListener(listenUrl, FRAUD_CONFIG_CHANNEL, {
        onNotify: (key) => this.cache.delete(key),
        onUp: () => {
          this.cache.clear();
          this.caching = true;
        },
        onDown: () => {
          this.caching = false;
          this.cache.clear();
        },
      });
  }

  useLogger(log: FastifyBaseLogger) {
    this.log = log;
  }

  listen(onRetry?: (error: unknown, retryInMs: number) => void) {
    return this.changes?.start(onRetry);
  }

  stopListening() {
    return this.changes?.stop();
  }

  /** Drops this process's copy of a tenant mode's configuration (the writer's own process, at once). */
  forget(scope: Scope) {
    this.cache.delete(scopeKey(scope));
  }

  /** The decision named `decisionKey` is committed with its outcome: it will not be asked again. */
  settled(scope: Scope, decisionKey: string) {
    this.velocity.settle({ tenantId: scope.tenantId, livemode: scope.livemode, decision: decisionKey });
  }

  async decide(scope: Scope, request: DecisionRequest): Promise<FraudDecision> {
    const { card, details } = request;
    const address = details?.ip_address ?? null;
    // The model and velocity see only a buyer's address: a loopback or private one is no IP at all
    // (as in training). Rules and lists still match the address as given.
    const buyer = address === null ? null : buyerAddress(address);
    const country = buyer === null ? null : ipCountry(buyer);
    const [configuration, velocity] = await Promise.all([
      this.configuration(scope),
      this.velocity.recordAndRead({
        tenantId: scope.tenantId,
        livemode: scope.livemode,
        decision: request.decisionKey,
        at: request.at.getTime(),
        amount: request.amount,
        card: card.fingerprint,
        platformCard: this.fingerprint(card.number, '__platform__'),
        email: details?.email?.toLowerCase() ?? null,
        ip: buyer,
        ipCountry: country,
        customer: request.customer,
      }),
    ]);
    const billingCountry = details?.billing_country?.toUpperCase() ?? null;
    let score = scoreRisk(this.model, {
      amount: request.amount,
      currency: request.currency.toUpperCase(),
      timestamp: request.at,
      cardBin: card.bin,
      cardCountry: card.country,
      ipCountry: country,
      billingCountry,
      hasEmail: Boolean(details?.email),
      hasCustomer: request.customer !== null,
      hasIp: buyer !== null,
      velocity,
    });
    const forced = scope.livemode ? undefined : TEST_RISK.get(card.number);
    if (forced) score = { ...score, ...forced };
    const inputs: DecisionInputs = {
      amount: request.amount,
      currency: request.currency.toLowerCase(),
      card: {
        bin: card.bin ?? '',
        brand: card.brand,
        country: card.country ?? '',
        fingerprint: card.fingerprint,
        funding: card.funding,
      },
      ip: { address: address ?? '', country: country ?? '' },
      billing_country: billingCountry ?? '',
      email: details?.email?.toLowerCase() ?? '',
      customer: request.customer ?? '',
      risk_score: score.riskScore,
      risk_level: score.riskLevel,
      velocity,
      hour: request.at.getUTCHours(),
      day_of_week: request.at.getUTCDay(),
    };
    const { action, rule, shadow } = this.evaluate(configuration, inputs);
    for (const match of shadow) {
      this.metrics.fraudShadowMatches.inc({ rule: match.name });
      this.log?.info(
        { payment: request.paymentId, rule: match.id, rule_name: match.name },
        'fraud shadow rule matched',
      );
    }
    this.metrics.fraudDecisions.inc({ action, rule: rule?.name ?? 'none' });
    return {
      outcome: {
        action,
        risk_score: score.riskScore,
        risk_level: score.riskLevel,
        rule,
        reasons: score.reasons,
        model_version: score.modelVersion,
      },
      inputs: storedInputs(inputs, shadow),
      listHits: listHits(configuration.blockLists, inputs),
    };
  }

  /**
   * An allow-list hit allows whatever the rules say. Otherwise the first enabled, non-shadow rule
   * that matches, in priority order, decides; shadow rules are all evaluated and reported, never
   * acted on. A rule whose evaluation fails (an overflow, say) does not match, and is logged.
   */
  private evaluate(configuration: TenantConfiguration, inputs: DecisionInputs) {
    const context = activation(inputs, configuration.lists);
    const shadow: { id: string; name: string }[] = [];
    let decided: RuleRow | undefined;
    for (const { row, compiled } of configuration.rules) {
      if (!row.enabled || (decided && !row.shadow)) continue;
      let matched = false;
      try {
        matched = compiled(context) === true;
      } catch (error) {
        this.log?.warn({ rule: row.id, err: error }, 'fraud rule evaluation failed');
      }
      if (!matched) continue;
      if (row.shadow) shadow.push({ id: row.id, name: row.name });
      else decided = row;
    }
    const allowed = configuration.allowLists.find(({ row, values }) => {
      const value = LIST_VALUE[row.item_type](inputs);
      return value !== '' && values.has(normalizeListValue(value));
    });
    if (allowed)
      return { action: 'allow' as FraudAction, rule: { id: allowed.row.id, name: allowed.row.name }, shadow };
    return {
      action: decided?.action ?? ('allow' as FraudAction),
      rule: decided ? { id: decided.id, name: decided.name } : null,
      shadow,
    };
  }

  /** Rules and lists of a tenant mode, installing the default pack the first time. */
  configuration(scope: Scope): Promise<TenantConfiguration> {
    const key = scopeKey(scope);
    const cached = this.cache.get(key);
    if (cached) return cached;
    const loading = inScope(this.sql, scope, async (tx) => {
      if (await claimDefaults(tx, scope)) await this.installDefaults(tx, scope);
      return loadConfiguration(tx, scope);
    }).then(({ rules, lists, items }) => {
      const values = new Map<string, Set<string>>(lists.map((list) => [list.id, new Set<string>()]));
      for (const item of items) values.get(item.list_id)?.add(normalizeListValue(item.value));
      const byName = new Map(lists.map((list) => [list.name, values.get(list.id)!]));
      return {
        rules: rules.map((row) => ({ row, compiled: compileRule(row.expression) })),
        lists: new RuleLists(byName),
        allowLists: lists.filter((l) => l.kind === 'allow').map((row) => ({ row, values: values.get(row.id)! })),
        blockLists: lists.filter((l) => l.kind === 'block').map((row) => ({ row, values: values.get(row.id)! })),
      };
    });
    if (this.caching) {
      this.cache.set(key, loading);
      loading.catch(() => this.cache.delete(key));
    }
    return loading;
  }

  private async installDefaults(tx: Tx, scope: Scope) {
    const now = new Date();
    const lists: ListRow[] = LIST_DEFAULTS.map((list) => ({
      id: newId('rsl'),
      tenant_id: scope.tenantId,
      livemode: scope.livemode,
      ...list,
      created_at: now,
    }));
    await insertRows(tx, 'fraud_lists', LIST_COLUMNS, lists);
    // Test mode's "always blocked" card is blocked by the fraud decision, through this list.
    if (!scope.livemode)
      await insertRows(tx, 'fraud_list_items', LIST_ITEM_COLUMNS, [
        {
          id: newId('rsli'),
          tenant_id: scope.tenantId,
          livemode: false,
          list_id: lists[0].id,
          value: this.fingerprint(TEST_CARD.fraudulent, scope.tenantId),
          created_at: now,
        },
      ]);
    await insertRows(
      tx,
      'fraud_rules',
      RULE_COLUMNS,
      DEFAULT_RULES.map((rule) => ({
        id: newId('rule'),
        tenant_id: scope.tenantId,
        livemode: scope.livemode,
        ...rule,
        enabled: true,
        shadow: false,
        created_at: now,
        updated_at: now,
      })),
    );
  }
}
