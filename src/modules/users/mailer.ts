import nodemailer, { type Transporter } from 'nodemailer';
import type { FastifyBaseLogger } from 'fastify';
import { ApiError } from '../../http/errors.js';

export interface Mail {
  to: string;
  subject: string;
  text: string;
}

export interface OutboxMessage extends Mail {
  from: string;
  sent: number;
}

const OUTBOX_SIZE = 100;

/**
 * Sends through SMTP_URL. Without it (development and tests only: production refuses to start
 * without one), a message goes to the log and to an in-memory outbox that GET /v1/dev/outbox shows,
 * since the link in an invitation is the whole point of it there.
 */
export class Mailer {
  private readonly transport?: Transporter;
  private readonly outbox: OutboxMessage[] = [];

  constructor(
    smtpUrl: string | undefined,
    private readonly from: string,
    /** Outside production the outbox's messages are logged too, links and all; in production there is no outbox. */
    private readonly development: boolean,
  ) {
    if (smtpUrl) this.transport = nodemailer.createTransport(smtpUrl);
  }

  get keepsOutbox(): boolean {
    return !this.transport && this.development;
  }

  /** Checked before anything is written that a mail must follow: production without SMTP_URL cannot send. */
  assertCanSend() {
    if (this.transport || this.development) return;
    throw new ApiError('api_error', 'mail_not_configured', 'Email is not configured (SMTP_URL).', null, 503);
  }

  async send(mail: Mail, log: Pick<FastifyBaseLogger, 'info'>): Promise<void> {
    if (this.transport) {
      await this.transport.sendMail({ from: this.from, ...mail });
      return;
    }
    this.assertCanSend();
    this.outbox.unshift({ from: this.from, ...mail, sent: Math.floor(Date.now() / 1000) });
    this.outbox.length = Math.min(this.outbox.length, OUTBOX_SIZE);
    log.info({ mail_to: mail.to, subject: mail.subject, text: mail.text }, 'mail kept in the dev outbox');
  }

  messages(): OutboxMessage[] {
    return [...this.outbox];
  }

  close() {
    this.transport?.close();
  }
}
