/** The API's error envelope: `{ error: { type, code, message, param, decline_code?, request_id? } }`. */
interface ErrorBody {
  type?: string;
  code?: string;
  message?: string;
  param?: string | null;
  decline_code?: string;
  request_id?: string;
  payment?: unknown;
}

/**
 * Every failure the SDK reports: an error answer of the API (after any retries), a connection that could not be
 * completed, or a webhook whose signature does not verify. `type` is the API's error type (`card_error`,
 * `invalid_request_error`, `idempotency_error`, `rate_limit_error`, `api_error`, ...), or `connection_error` and
 * `signature_verification_error` for the SDK's own.
 */
export class PayForwardError extends Error {
  override readonly name: string = 'PayForwardError';
  readonly type: string;
  readonly code: string;
  readonly param: string | null;
  /** The HTTP status; 0 when no answer came. */
  readonly status: number;
  /** The `request-id` of the answer: quote it to support. */
  readonly requestId: string | null;
  readonly declineCode: string | null;
  /** For a card error on a payment: the payment as it stands after the failure. */
  readonly payment: unknown;

  constructor(fields: {
    type: string;
    code: string;
    message: string;
    param?: string | null;
    status: number;
    requestId?: string | null;
    declineCode?: string | null;
    payment?: unknown;
    cause?: unknown;
  }) {
    super(fields.message, fields.cause === undefined ? undefined : { cause: fields.cause });
    this.type = fields.type;
    this.code = fields.code;
    this.param = fields.param ?? null;
    this.status = fields.status;
    this.requestId = fields.requestId ?? null;
    this.declineCode = fields.declineCode ?? null;
    this.payment = fields.payment;
  }

  /** The error an API answer (not 2xx) stands for; `body` is its parsed JSON, when it had any. */
  static fromResponse(response: Response, body: unknown): PayForwardError {
    const error = ((body as { error?: ErrorBody } | null)?.error ?? {}) as ErrorBody;
    return new PayForwardError({
      type: error.type ?? (response.status >= 500 ? 'api_error' : 'invalid_request_error'),
      code: error.code ?? `http_${response.status}`,
      message: error.message ?? `The API answered ${response.status} ${response.statusText}`.trim(),
      param: error.param ?? null,
      status: response.status,
      requestId: error.request_id ?? response.headers.get('request-id'),
      declineCode: error.decline_code ?? null,
      payment: error.payment,
    });
  }
}

/** No answer came, after every retry: the connection failed, was cut, or timed out. */
export class PayForwardConnectionError extends PayForwardError {
  override readonly name = 'PayForwardConnectionError';
  constructor(message: string, cause: unknown) {
    super({ type: 'connection_error', code: 'connection_failed', message, status: 0, cause });
  }
}

/** A webhook whose signature or timestamp does not verify: do not act on it. */
export class PayForwardSignatureError extends PayForwardError {
  override readonly name = 'PayForwardSignatureError';
  constructor(message: string, cause?: unknown) {
    super({ type: 'signature_verification_error', code: 'invalid_signature', message, status: 0, cause });
  }
}
