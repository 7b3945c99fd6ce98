import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { Secret, TOTP } from 'otpauth';
import { Type, type Static } from 'typebox';
import { inScope, type Sql, type Tx } from '../../db/index.js';
import { hasScope, type Auth } from '../../http/auth.js';
import { ApiError } from '../../http/errors.js';
import { Nullable } from '../../http/schemas.js';
import { newId, randomToken } from '../../lib/ids.js';
import type { CardVault } from '../vault/vault.js';
import type { SessionRecord, SessionStore } from '../sessions/store.js';
import type { Mailer } from './mailer.js';
import { checkPassword, hashPassword, passwordMatches } from './passwords.js';
import { isOperatorRole, isTenantRole, scopesOfRole, type Role } from './roles.js';
import { teamScope, type RequestContext, type SecurityEvents } from './security-events.js';

/** Operator staff belong to the platform itself. */
export const PLATFORM_TENANT = '__platform__';
export const MAX_FAILED_LOGINS = 10;
export const LOCKOUT_MS = 30 * 60 * 1000;
const INVITATION_TTL_MS = 72 * 60 * 60 * 1000;
const MFA_STEP_MS = 5 * 60 * 1000;
const RECOVERY_CODES = 10;
const TOTP_PERIOD = 30;

export interface UserRow {
  id: string;
  tenant_id: string;
  email: string;
  role: Role;
  status: 'invited' | 'active' | 'deactivated';
  password_hash: string | null;
  totp_kek_id: string | null;
  totp_wrapped_dek: Buffer | null;
  totp_secret_sealed: Buffer | null;
  totp_enrolled_at: Date | null;
  totp_last_step: number;
  recovery_code_hashes: string[];
  failed_logins: number;
  locked_until: Date | null;
  passkeys: number;
  last_login_at: Date | null;
  created_at: Date;
}

export const UserSchema = Type.Object(
  {
    id: Type.String({ examples: ['usr_01jd7s0k2m3n4p5q6r7s8t9v0w'] }),
    object: Type.Literal('user'),
    email: Type.String(),
    role: Type.String(),
    status: Type.String({ enum: ['invited', 'active', 'deactivated'] }),
    mfa: Type.Object({
      totp: Type.Boolean(),
      passkeys: Type.Integer(),
      recovery_codes_remaining: Type.Integer(),
    }),
    locked_until: Nullable(Type.Integer()),
    last_login: Nullable(Type.Integer()),
    created: Type.Integer(),
  },
  { $id: 'User' },
);
export type User = Static<typeof UserSchema>;

const seconds = (date: Date | null) => (date ? Math.floor(new Date(date).getTime() / 1000) : null);

export function toUser(row: UserRow): User {
  return {
    id: row.id,
    object: 'user',
    email: row.email,
    role: row.role,
    status: row.status,
    mfa: {
      totp: row.totp_enrolled_at !== null,
      passkeys: Number(row.passkeys ?? 0),
      recovery_codes_remaining: row.recovery_code_hashes.length,
    },
    locked_until: seconds(row.locked_until),
    last_login: seconds(row.last_login_at),
    created: seconds(row.created_at)!,
  };
}

const sha256 = (text: string) => createHash('sha256').update(text).digest();

/** The same answer for an unknown email, a wrong password and a locked account: nothing to enumerate. */
const invalidCredentials = () =>
  new ApiError(
    'authentication_error',
    'invalid_credentials',
    'The email or password is incorrect, or the account is locked for a while after too many failed attempts.',
    null,
    401,
  );
const invalidLogin = () =>
  new ApiError(
    'authentication_error',
    'invalid_login_token',
    'This login has expired or is unknown: sign in with your password again.',
    'login_token',
    401,
  );
const invalidSecondFactor = () =>
  new ApiError('authentication_error', 'invalid_mfa_code', 'The code or passkey was not accepted.', null, 401);

const USER_COLUMNS = (tx: Tx) => tx`u.*,
  (SELECT count(*) FROM user_passkeys p WHERE p.user_id = u.id)::int AS passkeys`;

/** Who is managing users: a tenant (key or session) its own team, the operator its own staff. */
interface Manager {
  tenantId: string;
  scopes: readonly string[];
  fullAccess: boolean;
  operator: boolean;
}

function managerOf(auth: Auth): Manager {
  if (auth.kind === 'platform') return { tenantId: PLATFORM_TENANT, scopes: ['*'], fullAccess: true, operator: true };
  const owner = auth.session?.role === 'owner';
  return {
    tenantId: auth.tenantId,
    scopes: auth.scopes,
    fullAccess: owner || (auth.via !== 'session' && auth.scopes.includes('*')),
    operator: false,
  };
}

export interface LoginChallenge {
  object: 'login';
  login_token: string;
  methods: string[];
  totp_enrolment?: { secret: string; otpauth_url: string };
  webauthn?: unknown;
}

/** Verifies a passkey assertion for a login; supplied by the passkeys module. */
export interface PasskeyVerifier {
  optionsFor(tx: Tx, user: UserRow, challenge: string): Promise<unknown | undefined>;
  verify(tx: Tx, user: UserRow, response: unknown, challenge: string): Promise<boolean>;
}

export class UserService {
  passkeys?: PasskeyVerifier;

  constructor(
    private readonly sql: Sql,
    private readonly vault: CardVault,
    private readonly mailer: Mailer,
    private readonly sessions: SessionStore,
    private readonly events: SecurityEvents,
    private readonly options: { publicUrl: string; issuer: string; clock: () => number },
  ) {}

  private now = () => this.options.clock();

  private async find(tx: Tx, tenantId: string, id: string, lock = false): Promise<UserRow> {
    const [row] = await tx<UserRow[]>`
      SELECT ${USER_COLUMNS(tx)} FROM users u WHERE u.id = ${id} AND u.tenant_id = ${tenantId}
      ${lock ? tx`FOR UPDATE` : tx``}`;
    if (!row) throw ApiError.notFound('user', id);
    return row;
  }

  /**
   * A manager grants only what it holds: a role whose scopes are all its own; the owner role (and
   * any change to an owner) takes an owner or a full-access key, so an admin cannot make or unmake
   * one. The operator manages only operator roles, a tenant only tenant roles.
   */
  private mayGrant(manager: Manager, role: string, param = 'role') {
    if (manager.operator ? !isOperatorRole(role) : !isTenantRole(role))
      throw ApiError.invalid(
        'invalid_role',
        manager.operator
          ? 'The operator invites operator staff: role must be operator_admin or operator_support.'
          : 'role must be one of owner, admin, developer, analyst, compliance, support, view_only.',
        param,
      );
    if (manager.operator) return;
    const beyond = isTenantRole(role)
      ? scopesOfRole(role).find((scope) => !hasScope(manager.scopes, scope))
      : undefined;
    if (beyond !== undefined || (role === 'owner' && !manager.fullAccess))
      throw new ApiError(
        'permission_error',
        'role_beyond_caller',
        `You may not grant or change the role "${role}": it holds more than you do.`,
        param,
        403,
      );
  }

  async invite(auth: Auth, context: RequestContext, email: string, role: string): Promise<User> {
    const manager = managerOf(auth);
    this.mayGrant(manager, role);
    this.mailer.assertCanSend();
    const token = randomToken(32);
    const user = await inScope(this.sql, teamScope(manager.tenantId), async (tx) => {
      const id = newId('usr');
      const inserted = await tx<UserRow[]>`
        INSERT INTO users (id, tenant_id, email, role, status, invitation_hash, invitation_expires_at, invited_by)
        VALUES (${id}, ${manager.tenantId}, ${email.toLowerCase()}, ${role}, 'invited', ${sha256(token)},
          ${new Date(this.now() + INVITATION_TTL_MS)}, ${context.actor.id})
        ON CONFLICT (email) WHERE status <> 'deactivated' DO NOTHING
        RETURNING *, 0 AS passkeys`;
      if (!inserted.length) {
        // Row-level security shows only this team's users: another team's (or the operator's) stays "taken".
        const [pending] = await tx<{ id: string }[]>`
          SELECT id FROM users WHERE email = ${email.toLowerCase()} AND tenant_id = ${manager.tenantId}
            AND status = 'invited'`;
        if (pending)
          throw ApiError.invalid(
            'invitation_pending',
            `${pending.id} is already invited with this email: resend the invitation with ` +
              `POST /v1/users/${pending.id}/resend_invitation.`,
            'email',
          );
        throw ApiError.invalid('email_taken', 'A user with this email already exists.', 'email');
      }
      await this.events.userInvited(tx, context, { tenantId: manager.tenantId, userId: id }, role);
      return inserted[0];
    });
    await this.sendInvitation(user, token, context);
    return toUser(user);
  }

  /**
   * A new link for an invitation not yet accepted (its email lost, or the link expired): the old link stops working,
   * the new one is valid 72 hours from now.
   */
  async resendInvitation(auth: Auth, context: RequestContext, id: string): Promise<User> {
    const manager = managerOf(auth);
    this.mailer.assertCanSend();
    const token = randomToken(32);
    const user = await inScope(this.sql, teamScope(manager.tenantId), async (tx) => {
      const found = await this.find(tx, manager.tenantId, id, true);
      this.mayGrant(manager, found.role, 'id');
      if (found.status !== 'invited')
        throw ApiError.invalid(
          'user_not_invited',
          `This user is ${found.status}: only a pending invitation can be resent.`,
          'id',
        );
      const [before] = await tx<{ invitation_expires_at: Date | null }[]>`
        SELECT invitation_expires_at FROM users WHERE id = ${id}`;
      const expires = new Date(this.now() + INVITATION_TTL_MS);
      await tx`UPDATE users SET invitation_hash = ${sha256(token)}, invitation_expires_at = ${expires},
        updated_at = now() WHERE id = ${id}`;
      await this.events.invitationResent(
        tx,
        context,
        { tenantId: manager.tenantId, userId: id },
        before.invitation_expires_at,
        expires,
      );
      return found;
    });
    await this.sendInvitation(user, token, context);
    return toUser(user);
  }

  /**
   * Sent after the commit: a failed send leaves an invitation that can be resent, never a mail pointing to a user
   * that does not exist. The caller learns the mail did not go, and how to send it again.
   */
  private async sendInvitation(user: UserRow, token: string, context: RequestContext) {
    try {
      await this.mailer.send(
        {
          to: user.email,
          subject: 'You are invited to PayForward',
          text:
            `You have been invited to PayForward as ${user.role}.\n\n` +
            `Accept the invitation within 72 hours: ${this.options.publicUrl}/invitations/${token}\n` +
            `(the dashboard calls POST /v1/invitations/${token}/accept with your new password).\n`,
        },
        context.log,
      );
    } catch (error) {
      context.log.info({ err: error, user: user.id }, 'invitation email not sent');
      throw new ApiError(
        'api_error',
        'invitation_not_sent',
        `The invitation of ${user.id} is saved but its email could not be sent; ` +
          `send it again with POST /v1/users/${user.id}/resend_invitation.`,
        null,
        502,
      );
    }
  }

  async list(auth: Auth, params: { limit?: number; starting_after?: string }) {
    const { tenantId } = managerOf(auth);
    const limit = params.limit ?? 10;
    return inScope(this.sql, teamScope(tenantId), async (tx) => {
      const rows = await tx<UserRow[]>`
        SELECT ${USER_COLUMNS(tx)} FROM users u WHERE u.tenant_id = ${tenantId}
        ${params.starting_after ? tx`AND u.id < ${params.starting_after}` : tx``}
        ORDER BY u.id DESC LIMIT ${limit + 1}`;
      return { data: rows.slice(0, limit).map(toUser), has_more: rows.length > limit };
    });
  }

  async get(auth: Auth, id: string): Promise<User> {
    const { tenantId } = managerOf(auth);
    return inScope(this.sql, teamScope(tenantId), async (tx) => toUser(await this.find(tx, tenantId, id)));
  }

  /** Refuses to leave a team without an active owner. */
  private async keepAnOwner(tx: Tx, user: UserRow) {
    if (user.role !== 'owner' || user.status !== 'active') return;
    const [{ owners }] = await tx<{ owners: number }[]>`
      SELECT count(*)::int AS owners FROM users
      WHERE tenant_id = ${user.tenant_id} AND role = 'owner' AND status = 'active' AND id <> ${user.id}`;
    if (owners === 0) throw ApiError.invalid('last_owner', 'The team must keep at least one active owner.', 'id');
  }

  async changeRole(auth: Auth, context: RequestContext, id: string, role: string): Promise<User> {
    const manager = managerOf(auth);
    this.mayGrant(manager, role);
    const updated = await inScope(this.sql, teamScope(manager.tenantId), async (tx) => {
      const user = await this.find(tx, manager.tenantId, id, true);
      if (user.status === 'deactivated') throw ApiError.invalid('user_deactivated', 'This user is deactivated.', 'id');
      this.mayGrant(manager, user.role, 'id');
      if (user.role === role) return user;
      if (role !== 'owner') await this.keepAnOwner(tx, user);
      await tx`UPDATE users SET role = ${role}, updated_at = now() WHERE id = ${id}`;
      await this.events.roleChanged(tx, context, { tenantId: manager.tenantId, userId: id }, user.role, role);
      return { ...user, role: role as Role };
    });
    // Sessions hold the role they were opened with: a changed role ends them.
    await this.sessions.deleteForUser(manager.tenantId, id);
    return toUser(updated);
  }

  async deactivate(auth: Auth, context: RequestContext, id: string): Promise<User> {
    const manager = managerOf(auth);
    const updated = await inScope(this.sql, teamScope(manager.tenantId), async (tx) => {
      const user = await this.find(tx, manager.tenantId, id, true);
      this.mayGrant(manager, user.role, 'id');
      await this.keepAnOwner(tx, user);
      const [row] = await tx<UserRow[]>`
        UPDATE users SET status = 'deactivated', invitation_hash = NULL, updated_at = now() WHERE id = ${id}
        RETURNING *, ${user.passkeys}::int AS passkeys`;
      await this.events.userDeactivated(tx, context, { tenantId: manager.tenantId, userId: id });
      return row;
    });
    await this.sessions.deleteForUser(manager.tenantId, id);
    return toUser(updated);
  }

  private newTotp(user: UserRow) {
    const secret = new Secret({ size: 20 });
    const sealed = this.vault.sealRecord(secret.base32, `totp:${user.id}`);
    return { secret, sealed };
  }

  private totpOf(user: UserRow, secret: string) {
    return new TOTP({ issuer: this.options.issuer, label: user.email, secret, period: TOTP_PERIOD, digits: 6 });
  }

  /** Saves a fresh, not yet confirmed TOTP secret and returns it for the authenticator app. */
  private async startTotpEnrolment(tx: Tx, user: UserRow) {
    const { secret, sealed } = this.newTotp(user);
    await tx`UPDATE users SET totp_kek_id = ${sealed.kekId}, totp_wrapped_dek = ${sealed.wrappedDek},
      totp_secret_sealed = ${sealed.ciphertext}, totp_enrolled_at = NULL, totp_last_step = 0 WHERE id = ${user.id}`;
    return { secret: secret.base32, otpauth_url: this.totpOf(user, secret.base32).toString() };
  }

  /** Opens an MFA step for a user whose password was just proven. */
  private async openMfaStep(tx: Tx, user: UserRow, livemode: boolean): Promise<LoginChallenge> {
    const token = `lgn_${randomToken(32)}`;
    const challenge = randomToken(32);
    const now = this.now();
    const record: SessionRecord = {
      id: newId('lgn'),
      tenantId: user.tenant_id,
      userId: user.id,
      stage: 'mfa',
      livemode,
      csrfToken: randomToken(24),
      mfaDeadline: now + MFA_STEP_MS,
      challenge,
      createdAt: now,
      lastSeenAt: now,
    };
    const enrolled = user.totp_enrolled_at !== null;
    const webauthn = enrolled ? await this.passkeys?.optionsFor(tx, user, challenge) : undefined;
    await this.sessions.create(token, record);
    return {
      object: 'login',
      login_token: token,
      methods: enrolled ? ['totp', 'recovery_code', ...(webauthn ? ['webauthn'] : [])] : ['totp_enrolment'],
      ...(enrolled ? {} : { totp_enrolment: await this.startTotpEnrolment(tx, user) }),
      ...(webauthn ? { webauthn } : {}),
    };
  }

  /** Sets the password of an invited user; the answer starts the TOTP enrolment (finished by POST /v1/sessions/mfa). */
  async acceptInvitation(context: RequestContext, token: string, password: string): Promise<LoginChallenge> {
    const [found] = await this.sql<{ id: string; tenant_id: string }[]>`
      SELECT * FROM auth_find_invitation(${sha256(token)})`;
    if (!found) throw ApiError.notFound('invitation', 'token', 'token');
    return inScope(this.sql, teamScope(found.tenant_id), async (tx) => {
      const [user] = await tx<(UserRow & { invitation_expires_at: Date })[]>`
        SELECT ${USER_COLUMNS(tx)} FROM users u WHERE u.id = ${found.id} AND u.status = 'invited' FOR UPDATE`;
      if (!user || user.invitation_expires_at.getTime() <= this.now())
        throw ApiError.invalid('invitation_expired', 'This invitation has expired: ask for a new one.', 'token');
      checkPassword(password, user.email);
      // Single use: the token's hash is gone once accepted.
      await tx`UPDATE users SET status = 'active', password_hash = ${await hashPassword(password)},
        invitation_hash = NULL, invitation_expires_at = NULL, updated_at = now() WHERE id = ${user.id}`;
      return this.openMfaStep(tx, { ...user, status: 'active', totp_enrolled_at: null }, false);
    });
  }

  /** Counts a failed password or second factor; the tenth in a row locks the account for 30 minutes. */
  private async countFailure(context: RequestContext, tenantId: string, userId: string) {
    await inScope(this.sql, teamScope(tenantId), async (tx) => {
      const [row] = await tx<{ failed_logins: number }[]>`
        UPDATE users SET failed_logins = failed_logins + 1 WHERE id = ${userId} RETURNING failed_logins`;
      if (!row || row.failed_logins < MAX_FAILED_LOGINS) return;
      const until = new Date(this.now() + LOCKOUT_MS);
      await tx`UPDATE users SET failed_logins = 0, locked_until = ${until} WHERE id = ${userId}`;
      await this.events.lockedOut(tx, context, { tenantId, userId }, until);
    });
  }

  async startLogin(context: RequestContext, email: string, password: string, livemode: boolean) {
    const [found] = await this.sql<
      { id: string; tenant_id: string; password_hash: string; locked_until: Date | null }[]
    >`
      SELECT * FROM auth_find_login(${email})`;
    // An unknown email is verified against a dummy hash: the same answer, in about the same time.
    const matches = await passwordMatches(found?.password_hash, password);
    if (!found) {
      await this.events.loginFailed(undefined, context, {}, 'unknown_email');
      throw invalidCredentials();
    }
    const target = { tenantId: found.tenant_id, userId: found.id };
    if (found.locked_until && found.locked_until.getTime() > this.now()) {
      await this.events.loginFailed(undefined, context, target, 'locked');
      throw invalidCredentials();
    }
    if (!matches) {
      await this.events.loginFailed(undefined, context, target, 'wrong_password');
      await this.countFailure(context, found.tenant_id, found.id);
      throw invalidCredentials();
    }
    if (found.tenant_id === PLATFORM_TENANT && livemode)
      throw ApiError.invalid('livemode_not_applicable', 'Operator staff sessions have no mode.', 'livemode');
    return inScope(this.sql, teamScope(found.tenant_id), async (tx) =>
      this.openMfaStep(tx, await this.find(tx, found.tenant_id, found.id, true), livemode),
    );
  }

  private async checkTotp(tx: Tx, user: UserRow, code: string): Promise<boolean> {
    if (!user.totp_secret_sealed || !user.totp_kek_id || !user.totp_wrapped_dek) return false;
    const secret = this.vault.openRecord(
      { kekId: user.totp_kek_id, wrappedDek: user.totp_wrapped_dek, ciphertext: user.totp_secret_sealed },
      `totp:${user.id}`,
    );
    const now = this.now();
    const delta = this.totpOf(user, secret).validate({ token: code, timestamp: now, window: 1 });
    if (delta === null) return false;
    const step = Math.floor(now / 1000 / TOTP_PERIOD) + delta;
    // Compare-and-set on the last step used: a code seen once (even by a concurrent request) is spent.
    const used = await tx`UPDATE users SET totp_last_step = ${step} WHERE id = ${user.id} AND totp_last_step < ${step}`;
    return used.count === 1;
  }

  private async useRecoveryCode(tx: Tx, user: UserRow, code: string): Promise<boolean> {
    const hash = sha256(code.replace(/[\s-]/g, '').toLowerCase()).toString('hex');
    const used = await tx`UPDATE users SET recovery_code_hashes = array_remove(recovery_code_hashes, ${hash})
      WHERE id = ${user.id} AND ${hash} = ANY (recovery_code_hashes)`;
    return used.count === 1;
  }

  private async issueRecoveryCodes(tx: Tx, userId: string): Promise<string[]> {
    const codes = Array.from({ length: RECOVERY_CODES }, () => {
      const raw = randomBytes(10).toString('hex');
      return `${raw.slice(0, 5)}-${raw.slice(5, 10)}-${raw.slice(10, 15)}-${raw.slice(15)}`;
    });
    const hashes = codes.map((code) => sha256(code.replace(/-/g, '')).toString('hex'));
    await tx`UPDATE users SET recovery_code_hashes = ${hashes} WHERE id = ${userId}`;
    return codes;
  }

  /**
   * The second step of a login (or of an invitation's acceptance): a TOTP code, a recovery code or
   * a passkey assertion. Success replaces the login token with a new session token (no fixation).
   */
  async finishLogin(
    context: RequestContext,
    loginToken: string,
    factor: { code?: string; recovery_code?: string; webauthn?: unknown },
  ): Promise<{ token: string; record: SessionRecord; user: User; recoveryCodes?: string[] }> {
    const login = await this.sessions.touch(loginToken, this.now());
    if (!login || login.stage !== 'mfa' || (login.mfaDeadline ?? 0) <= this.now()) throw invalidLogin();
    const target = { tenantId: login.tenantId, userId: login.userId };
    const outcome = await inScope(this.sql, teamScope(login.tenantId), async (tx) => {
      const user = await this.find(tx, login.tenantId, login.userId, true);
      if (user.status !== 'active' || (user.locked_until && user.locked_until.getTime() > this.now()))
        return { ok: false as const, user, method: 'locked' };
      const enrolling = user.totp_enrolled_at === null;
      let method: string;
      let ok: boolean;
      if (factor.code !== undefined) {
        method = 'totp';
        ok = await this.checkTotp(tx, user, factor.code);
      } else if (factor.recovery_code !== undefined && !enrolling) {
        method = 'recovery_code';
        ok = await this.useRecoveryCode(tx, user, factor.recovery_code);
      } else if (factor.webauthn !== undefined && !enrolling && this.passkeys && login.challenge) {
        method = 'webauthn';
        ok = await this.passkeys.verify(tx, user, factor.webauthn, login.challenge);
      } else {
        throw ApiError.invalid(
          'mfa_factor_missing',
          enrolling
            ? 'Send `code`, the current code of the authenticator app set up with the TOTP secret.'
            : 'Send one of `code` (TOTP), `recovery_code` or `webauthn` (a passkey assertion).',
        );
      }
      if (!ok) return { ok: false as const, user, method };
      let recoveryCodes: string[] | undefined;
      if (enrolling) {
        await tx`UPDATE users SET totp_enrolled_at = ${new Date(this.now())} WHERE id = ${user.id}`;
        recoveryCodes = await this.issueRecoveryCodes(tx, user.id);
        await this.events.mfaEnrolled(tx, context, target, 'totp');
      }
      const [row] = await tx<UserRow[]>`
        UPDATE users SET failed_logins = 0, locked_until = NULL, last_login_at = ${new Date(this.now())}
        WHERE id = ${user.id} RETURNING *, ${user.passkeys}::int AS passkeys`;
      await this.events.loginSucceeded(tx, context, target, method);
      return { ok: true as const, user: row, recoveryCodes };
    });
    if (!outcome.ok) {
      await this.events.mfaFailed(undefined, context, target, outcome.method);
      if (outcome.method !== 'locked') await this.countFailure(context, login.tenantId, login.userId);
      throw invalidSecondFactor();
    }
    await this.sessions.delete(loginToken, login.tenantId);
    const now = this.now();
    const token = randomToken(32);
    const record: SessionRecord = {
      id: newId('sess'),
      tenantId: login.tenantId,
      userId: login.userId,
      role: outcome.user.role,
      stage: 'active',
      livemode: login.livemode,
      csrfToken: randomToken(24),
      createdAt: now,
      lastSeenAt: now,
    };
    await this.sessions.create(token, record);
    return { token, record, user: toUser(outcome.user), recoveryCodes: outcome.recoveryCodes };
  }

  /** The principal of a session cookie, or undefined when there is no live session for it. */
  async sessionFor(token: string): Promise<SessionRecord | undefined> {
    const record = await this.sessions.touch(token, this.now());
    return record?.stage === 'active' ? record : undefined;
  }

  static csrfMatches(record: SessionRecord, header: string | undefined): boolean {
    if (!header) return false;
    const expected = Buffer.from(record.csrfToken);
    const given = Buffer.from(header);
    return expected.length === given.length && timingSafeEqual(expected, given);
  }

  async logout(token: string, record: SessionRecord) {
    await this.sessions.delete(token, record.tenantId);
  }

  async me(record: SessionRecord): Promise<User> {
    return inScope(this.sql, teamScope(record.tenantId), async (tx) =>
      toUser(await this.find(tx, record.tenantId, record.userId)),
    );
  }

  /** Changes the password after proving the current one; every session of the user ends. */
  async changePassword(context: RequestContext, record: SessionRecord, current: string, next: string) {
    const user = await inScope(this.sql, teamScope(record.tenantId), async (tx) => {
      const user = await this.find(tx, record.tenantId, record.userId, true);
      if (!(await passwordMatches(user.password_hash, current)))
        throw ApiError.invalid('incorrect_password', 'The current password is not correct.', 'current_password');
      checkPassword(next, user.email, 'new_password');
      await tx`UPDATE users SET password_hash = ${await hashPassword(next)}, updated_at = now() WHERE id = ${user.id}`;
      await this.events.passwordChanged(tx, context, { tenantId: record.tenantId, userId: user.id });
      return user;
    });
    await this.sessions.deleteForUser(record.tenantId, record.userId);
    return toUser(user);
  }

  /** New recovery codes (the old ones stop working), after a current TOTP code. */
  async regenerateRecoveryCodes(record: SessionRecord, code: string): Promise<string[]> {
    return inScope(this.sql, teamScope(record.tenantId), async (tx) => {
      const user = await this.find(tx, record.tenantId, record.userId, true);
      if (!(await this.checkTotp(tx, user, code)))
        throw ApiError.invalid('invalid_mfa_code', 'The code was not accepted.', 'code');
      return this.issueRecoveryCodes(tx, user.id);
    });
  }
}
