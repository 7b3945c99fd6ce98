import { maskCardNumbers } from './logging.js';

export type ErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'card_error'
  | 'idempotency_error'
  | 'rate_limit_error'
  | 'api_error';

const STATUS_BY_TYPE: Record<ErrorType, number> = {
  invalid_request_error: 400,
  authentication_error: 401,
  permission_error: 403,
  card_error: 402,
  idempotency_error: 409,
  rate_limit_error: 429,
  api_error: 500,
};

export interface ErrorBody {
  type: ErrorType;
  code: string;
  message: string;
  param: string | null;
  decline_code?: string;
  request_id?: string;
  payment?: unknown;
}

/** The one error thrown anywhere in the platform; the error handler turns it into the envelope. */
export class ApiError extends Error {
  readonly statusCode: number;
  /** For card errors on a payment: the payment as it stands after the failure, as Stripe does. */
  payment?: unknown;
  constructor(
    readonly type: ErrorType,
    readonly code: string,
    message: string,
    readonly param: string | null = null,
    statusCode?: number,
    readonly declineCode?: string,
  ) {
    super(message);
    this.statusCode = statusCode ?? STATUS_BY_TYPE[type];
  }

  toBody(requestId?: string): ErrorBody {
    return {
      type: this.type,
      code: this.code,
      message: this.message,
      param: this.param,
      ...(this.declineCode ? { decline_code: this.declineCode } : {}),
      ...(requestId ? { request_id: requestId } : {}),
      ...(this.payment ? { payment: this.payment } : {}),
    };
  }

  static notFound(resource: string, id: string, param: string | null = 'id') {
    return new ApiError(
      'invalid_request_error',
      'resource_missing',
      `No such ${resource}: '${safeEcho(id)}'`,
      param,
      404,
    );
  }

  static invalid(code: string, message: string, param: string | null = null) {
    return new ApiError('invalid_request_error', code, message, param);
  }

  static stateConflict(message: string) {
    return new ApiError('invalid_request_error', 'payment_intent_unexpected_state', message, null, 400);
  }
}

// Identifiers are echoed in messages; anything that could be card data or is oversized is not.
export function safeEcho(value: string): string {
  const trimmed = String(value).slice(0, 64);
  return maskCardNumbers(trimmed).replace(/[^\w\-.:]/g, '?');
}
