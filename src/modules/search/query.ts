import { ApiError } from '../../http/errors.js';

/**
 * A subset of Stripe's search query language:
 *   clause  := ['-'] field operator value
 *   field   := name | 'metadata[' quoted-key ']'
 *   operator:= ':' (equals) | '>' | '>=' | '<' | '<=' (numeric fields only)
 *   value   := 'single' or "double" quoted string, or an integer
 *   query   := clause { ('AND' | 'OR') clause }   (AND and OR cannot be mixed; at most 10 clauses)
 * A clause separated by whitespace alone is an AND, as on Stripe.
 */
export type Operator = ':' | '>' | '>=' | '<' | '<=';

export interface Clause {
  field: string;
  /** The key of a `metadata['key']` clause. */
  key?: string;
  operator: Operator;
  value: string | number;
  negated: boolean;
}

export interface SearchQuery {
  combinator: 'AND' | 'OR';
  clauses: Clause[];
}

export interface FieldSpec {
  type: 'string' | 'number';
}

export const MAX_CLAUSES = 10;

class Scanner {
  pos = 0;
  constructor(readonly text: string) {}

  fail(message: string, at = this.pos): never {
    throw ApiError.invalid(
      'invalid_search_query',
      `Invalid search query at position ${at}: ${message}. Example: status:'succeeded' AND amount>1000.`,
      'query',
    );
  }

  skipSpace() {
    while (this.pos < this.text.length && /\s/.test(this.text[this.pos])) this.pos++;
  }

  done() {
    this.skipSpace();
    return this.pos >= this.text.length;
  }

  peekWord(word: string) {
    const end = this.pos + word.length;
    return this.text.slice(this.pos, end) === word && (end === this.text.length || /\s/.test(this.text[end]));
  }

  quoted(): string {
    const quote = this.text[this.pos];
    if (quote !== "'" && quote !== '"') this.fail('expected a quoted string');
    const start = this.pos;
    let value = '';
    this.pos++;
    while (this.pos < this.text.length && this.text[this.pos] !== quote) {
      if (this.text[this.pos] === '\\' && this.pos + 1 < this.text.length) this.pos++;
      value += this.text[this.pos++];
    }
    if (this.pos >= this.text.length) this.fail('unterminated string', start);
    this.pos++;
    return value;
  }
}

function clause(s: Scanner, fields: Record<string, FieldSpec>): Clause {
  s.skipSpace();
  const start = s.pos;
  const negated = s.text[s.pos] === '-';
  if (negated) s.pos++;
  const name = /^[a-z_0-9]+/.exec(s.text.slice(s.pos))?.[0];
  if (!name) s.fail('expected a field name');
  s.pos += name.length;
  let key: string | undefined;
  const spec = fields[name];
  if (name === 'metadata' && spec) {
    if (s.text[s.pos] !== '[') s.fail("expected metadata['key']");
    s.pos++;
    key = s.quoted();
    if (s.text[s.pos] !== ']') s.fail("expected ']'");
    s.pos++;
  }
  if (!spec) s.fail(`unknown field '${name}' (fields: ${Object.keys(fields).join(', ')})`, start);
  const operator = (['>=', '<=', ':', '>', '<'] as const).find((op) => s.text.startsWith(op, s.pos));
  if (!operator) s.fail("expected ':', '>', '>=', '<' or '<='");
  s.pos += operator.length;
  const valueAt = s.pos;
  let value: string | number;
  if (s.text[s.pos] === "'" || s.text[s.pos] === '"') {
    value = s.quoted();
    if (spec.type === 'number') {
      if (!/^-?[0-9]{1,15}$/.test(value)) s.fail(`'${name}' takes an integer`, valueAt);
      value = Number(value);
    }
  } else {
    const digits = /^-?[0-9]{1,15}(?![0-9])/.exec(s.text.slice(s.pos))?.[0];
    if (!digits) s.fail('expected a quoted string or an integer', valueAt);
    s.pos += digits.length;
    value = spec.type === 'number' ? Number(digits) : digits;
  }
  if (operator !== ':' && spec.type !== 'number') s.fail(`'${name}' supports only ':'`, valueAt - operator.length);
  if (negated && operator !== ':') s.fail("'-' negates only ':' clauses", start);
  return { field: name, key, operator, value, negated };
}

/** Parses a query against the fields a resource can be searched by; a mistake is a 400 naming its position. */
export function parseSearchQuery(text: string, fields: Record<string, FieldSpec>): SearchQuery {
  const s = new Scanner(text);
  if (s.done()) s.fail('the query is empty', 0);
  const clauses = [clause(s, fields)];
  let combinator: 'AND' | 'OR' | undefined;
  while (!s.done()) {
    const at = s.pos;
    let next: 'AND' | 'OR' = 'AND';
    for (const word of ['AND', 'OR'] as const) {
      if (s.peekWord(word)) {
        next = word;
        s.pos += word.length;
      }
    }
    if (combinator && combinator !== next) s.fail('AND and OR cannot be combined in one query', at);
    combinator = next;
    clauses.push(clause(s, fields));
    if (clauses.length > MAX_CLAUSES) s.fail(`a query has at most ${MAX_CLAUSES} clauses`, at);
  }
  return { combinator: combinator ?? 'AND', clauses };
}

/** The opaque `page` cursor of a search: the last id of the previous page. */
export const pageCursor = {
  encode: (id: string) => Buffer.from(id).toString('base64url'),
  decode: (page: string) => {
    const id = Buffer.from(page, 'base64url').toString();
    if (!/^[a-z]+_[0-9a-z]+$/.test(id))
      throw ApiError.invalid('invalid_page', 'This page cursor is not one a search returned.', 'page');
    return id;
  },
};
