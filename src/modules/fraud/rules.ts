import { Environment, type ParseResult } from '@marcbachmann/cel-js';
import { ApiError } from '../../http/errors.js';
import type { VelocitySnapshot } from './model/signals.js';
import { ZERO_VELOCITY } from './velocity.js';

/** Everything a rule can read about a payment; strings are '' when unknown (CEL has no null strings). */
export interface DecisionInputs {
  amount: number;
  currency: string;
  card: { bin: string; brand: string; country: string; fingerprint: string; funding: string };
  ip: { address: string; country: string };
  billing_country: string;
  email: string;
  customer: string;
  risk_score: number;
  risk_level: string;
  velocity: VelocitySnapshot;
  /** Hour of the decision (0–23) and weekday (0 = Sunday), UTC. */
  hour: number;
  day_of_week: number;
}

/** A tenant's lists as a rule sees them: `lists.contains('blocked_emails', email)`. */
export class RuleLists {
  constructor(private readonly byName: ReadonlyMap<string, ReadonlySet<string>>) {}

  contains(name: string, value: string): boolean {
    return value !== '' && (this.byName.get(name)?.has(normalizeListValue(value)) ?? false);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }
}

/** Emails and countries compare without case; the other list values are exact. */
export function normalizeListValue(value: string): string {
  return value.includes('@') || /^[a-z]{2}$/i.test(value) ? value.toLowerCase() : value;
}

export const MAX_EXPRESSION_LENGTH = 2_000;
const LIMITS = { maxAstNodes: 150, maxDepth: 16, maxListElements: 100, maxMapEntries: 20, maxCallArguments: 4 };

const STRING_FIELDS = (names: string[]) => Object.fromEntries(names.map((name) => [name, 'string']));

const environment = new Environment({ limits: LIMITS })
  .registerType('Lists', RuleLists)
  .registerFunction({
    name: 'contains',
    receiverType: 'Lists',
    returnType: 'bool',
    params: [
      { name: 'list', type: 'string' },
      { name: 'value', type: 'string' },
    ],
    handler: (lists: RuleLists, name: string, value: string) => lists.contains(name, value),
    description: 'Whether the named list holds the value.',
  })
  .registerVariable('amount', 'int')
  .registerVariable('currency', 'string')
  .registerVariable({ name: 'card', schema: STRING_FIELDS(['bin', 'brand', 'country', 'fingerprint', 'funding']) })
  .registerVariable({ name: 'ip', schema: STRING_FIELDS(['address', 'country']) })
  .registerVariable('billing_country', 'string')
  .registerVariable('email', 'string')
  .registerVariable('customer', 'string')
  .registerVariable('risk_score', 'int')
  .registerVariable('risk_level', 'string')
  .registerVariable({
    name: 'velocity',
    schema: Object.fromEntries(Object.keys(ZERO_VELOCITY).map((name) => [name, 'int'])),
  })
  .registerVariable('lists', 'Lists')
  .registerVariable('hour', 'int')
  .registerVariable('day_of_week', 'int');

export type CompiledRule = ParseResult;

function invalidExpression(code: string, message: string, position: number, expression: string): ApiError {
  const before = expression.slice(0, position).split('\n');
  return ApiError.invalid(
    code,
    `${message} (at position ${position}: line ${before.length}, column ${before.at(-1)!.length + 1}).`,
    'expression',
  );
}

/**
 * Parses and type-checks a rule. Refuses, with the position of the fault: a syntax error, an
 * unknown variable or field, a wrong type, an expression that is not a condition, one over the size
 * or depth limits, and a list name the tenant does not have (a typo would otherwise never match).
 */
export function compileRule(expression: string, lists?: RuleLists): CompiledRule {
  if (expression.length > MAX_EXPRESSION_LENGTH)
    throw invalidExpression(
      'expression_too_large',
      `The expression is longer than ${MAX_EXPRESSION_LENGTH} characters`,
      MAX_EXPRESSION_LENGTH,
      expression,
    );
  let parsed: ParseResult;
  try {
    parsed = environment.parse(expression);
  } catch (error) {
    const { summary, range } = error as { summary?: string; range?: { start: number } };
    const tooLarge = /^Exceeded max/.test(summary ?? '');
    throw invalidExpression(
      tooLarge ? 'expression_too_large' : 'expression_syntax_error',
      tooLarge ? `The expression is too large or too deeply nested: ${summary}` : `Syntax error: ${summary}`,
      range?.start ?? 0,
      expression,
    );
  }
  const checked = parsed.check();
  if (!checked.valid) {
    const error = checked.error!;
    const summary = (error as { summary?: string }).summary ?? error.message;
    const start = (error as { range?: { start: number } }).range?.start ?? 0;
    const unknown = /^(Unknown variable|No such key)/.test(summary);
    throw invalidExpression(
      unknown ? 'expression_unknown_variable' : 'expression_type_error',
      unknown ? summary : `Type error: ${summary}`,
      start,
      expression,
    );
  }
  if (checked.type !== 'bool')
    throw invalidExpression(
      'expression_type_error',
      `The expression must be a condition (bool), not ${checked.type}`,
      0,
      expression,
    );
  if (lists) {
    for (const match of expression.matchAll(/lists\.contains\(\s*(['"])([^'"]*)\1/g)) {
      if (!lists.has(match[2]))
        throw invalidExpression(
          'expression_unknown_list',
          `No list named '${match[2].slice(0, 100)}': create it with POST /v1/fraud/lists first`,
          match.index + match[0].indexOf(match[2]),
          expression,
        );
    }
  }
  return parsed;
}

/** BigInts of small integers, made once: most figures are small, and each BigInt made is an allocation. */
const SMALL_INTS = Array.from({ length: 1024 }, (_, i) => BigInt(i));

/** A CEL integer (a BigInt) of a whole number; a fractional one is truncated. */
function celInt(value: number): bigint {
  const whole = Math.trunc(value);
  return whole >= 0 && whole < SMALL_INTS.length ? SMALL_INTS[whole]! : BigInt(whole);
}

/**
 * The CEL activation for a payment: CEL integers are BigInts. It is built once per decision on the
 * payment path, so it names its fields rather than copying the inputs.
 */
export function activation(inputs: DecisionInputs, lists: RuleLists): Record<string, unknown> {
  const velocity: Record<string, bigint> = {};
  // Whole units for rules: seconds_since_card_last_seen is fractional in the contract.
  for (const name in inputs.velocity) velocity[name] = celInt(inputs.velocity[name as keyof VelocitySnapshot]);
  return {
    amount: celInt(inputs.amount),
    currency: inputs.currency,
    card: inputs.card,
    ip: inputs.ip,
    billing_country: inputs.billing_country,
    email: inputs.email,
    customer: inputs.customer,
    risk_score: celInt(inputs.risk_score),
    risk_level: inputs.risk_level,
    velocity,
    hour: celInt(inputs.hour),
    day_of_week: celInt(inputs.day_of_week),
    lists,
  };
}
