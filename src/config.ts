import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { PostgresOptions } from './platform/db/database.ts';

const booleanFlag = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((value) => value === 'true' || value === '1' || value === 'yes');

const envSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  HOST: z.string().min(1).optional(),
  WORKER_HTTP_PORT: z.coerce.number().int().min(0).max(65535).default(3001),
  METRICS_PORT: z.coerce.number().int().min(1).max(65535).optional(),
  METRICS_TOKEN: z.string().min(16, 'at least 16 characters').optional(),
  PUBLIC_URL: z.url().optional(),
  DATA_DIR: z.string().min(1).default('./data'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
    .optional(),
  DB_POOL_SIZE: z.coerce.number().int().min(1).max(1000).default(10),
  DB_CONNECT_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(5000),
  DB_STATEMENT_TIMEOUT_MS: z.coerce.number().int().min(0).max(3_600_000).default(10_000),
  DB_LOCK_TIMEOUT_MS: z.coerce.number().int().min(0).max(3_600_000).default(5000),
  DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: z.coerce.number().int().min(0).max(3_600_000).default(30_000),
  DB_QUERY_TIMEOUT_MS: z.coerce.number().int().min(0).max(3_600_000).default(12_000),
  HEALTH_TIMEOUT_MS: z.coerce.number().int().min(50).max(10_000).default(800),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  MASTER_KEYS: z
    .string()
    .regex(/^[\w-]+:[A-Za-z0-9+/=]{43,44}(,[\w-]+:[A-Za-z0-9+/=]{43,44})*$/, 'expected kid:base64key[,kid:base64key...]')
    .optional(),
  HASH_SECRET: z.string().min(32).optional(),
  ACCESS_TOKEN_TTL_SECONDS: z.coerce.number().int().min(30).max(3600).default(300),
  REFRESH_TOKEN_TTL_SECONDS: z.coerce.number().int().min(60).max(2_592_000).default(1800),
  EXCHANGE_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).default(120),
  JWKS_REFETCH_COOLDOWN_SECONDS: z.coerce.number().min(0).max(3600).default(30),
  BODY_LIMIT_BYTES: z.coerce.number().int().min(1024).default(1_048_576),
  S3_BUCKET: z.string().min(3).optional(),
  S3_REGION: z.string().min(1).default('us-east-1'),
  S3_ENDPOINT: z.url().optional(),
  S3_FORCE_PATH_STYLE: booleanFlag.default(false),
  S3_ACCESS_KEY_ID: z.string().min(1).optional(),
  S3_SECRET_ACCESS_KEY: z.string().min(1).optional(),
  KYC_VERIFICATION_TTL_HOURS: z.coerce.number().min(0.001).default(72),
  KYC_SANDBOX_ASYNC_DELAY_MS: z.coerce.number().int().min(0).default(3000),
  KYC_SANDBOX_SUBMIT_DELAY_MS: z.coerce.number().int().min(0).default(0),
  IN_PROGRESS_LEASE_SECONDS: z.coerce.number().min(0.1).max(3600).default(60),
  ACCREDITATION_VALIDITY_DAYS: z.coerce.number().int().min(1).default(90),
  WEBHOOK_EGRESS_ALLOWLIST: z.string().optional(),
  NODE_ENV: z.string().optional(),
  WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(15_000),
  WEBHOOK_RETRY_SCHEDULE_SECONDS: z
    .string()
    .regex(/^\d+(\.\d+)?(,\d+(\.\d+)?)*$/, 'expected comma-separated seconds')
    .default('5,300,1800,7200,18000,36000,36000'),
  WEBHOOK_SECRET_GRACE_SECONDS: z.coerce.number().int().min(0).max(604_800).default(86_400),
  WEBHOOK_DISABLE_AFTER_HOURS: z.coerce.number().min(0.001).default(120),
  WORKER_POLL_MS: z.coerce.number().int().min(10).default(1000),
  WEBHOOK_LEASE_SECONDS: z.coerce.number().min(1).max(3600).default(60),
  WORKER_DRAIN_SECONDS: z.coerce.number().min(0).max(3600).default(10),
  STRIPE_SECRET_KEY: z
    .string()
    .regex(/^(sk|rk)_(test|live)_\w+$/, 'must be a Stripe secret key')
    .optional(),
  STRIPE_WEBHOOK_SECRET: z.string().startsWith('whsec_').optional(),
  STRIPE_API_BASE: z.url().optional(),
  STRIPE_DOUBLE_PORT: z.coerce.number().int().min(0).max(65535).default(0),
  ALLOW_INSECURE_HTTP: booleanFlag.optional(),
  DEMO_IDP: booleanFlag.optional(),
  SMTP_URL: z
    .string()
    .regex(/^smtps?:\/\//, 'must be an smtp:// or smtps:// URL')
    .optional(),
  MAIL_FROM: z.string().min(3).default('Tranche <no-reply@localhost>'),
  KEYSERVER_NETWORK_PASSPHRASE: z.string().min(8).default('Tranche Identity Storage'),
  KEYSERVER_EMAIL_VERIFICATION: booleanFlag.default(true),
  KEYSERVER_CLIENT_URL: z.url().optional(),
  KEYSERVER_DEFAULT_SIGNER_ROLE: z.coerce.number().int().min(2).default(2),
  KEYSERVER_KYC_RECOVERY_SIGNER_ROLE: z.coerce.number().int().min(2).default(3),
  KEYSERVER_SESSION_TTL_SECONDS: z.coerce.number().int().min(60).max(86_400).default(600),
  KEYSERVER_TOTP_ISSUER: z.string().min(1).max(64).default('Tranche'),
  KEYSERVER_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).default(60),
  KEYSERVER_SIGNATURE_SKEW_SECONDS: z.coerce.number().int().min(1).max(3600).default(300),
  KEYSERVER_STRICT_SIGNATURES: booleanFlag.default(false),
  KEYSERVER_MAILS_PER_ADDRESS_PER_HOUR: z.coerce.number().int().min(1).default(5),
  KEYSERVER_INVITES_PER_REQUEST: z.coerce.number().int().min(1).max(500).default(20),
  KEYSERVER_INVITES_PER_ACCOUNT_PER_DAY: z.coerce.number().int().min(1).default(100),
  AUTH_FAILURES_PER_MINUTE: z.coerce.number().int().min(1).default(20),
  TRUST_PROXY: z
    .string()
    .regex(/^[\w.:/]+(\s*,\s*[\w.:/]+)*$/, 'expected comma-separated IP addresses or CIDRs')
    .optional(),
  CORS_ORIGINS: z
    .string()
    .regex(/^https?:\/\/[^\s,]+(\s*,\s*https?:\/\/[^\s,]+)*$/, 'expected comma-separated origins (https://app.example.com)')
    .optional(),
});

export type Config = {
  port: number;
  /** Listen address: 127.0.0.1 on the embedded database (development), else 0.0.0.0. */
  host: string;
  publicUrl: string;
  /**
   * `--role worker` only: the port of the worker's own HTTP server (`/health/live`,
   * `/health/ready`, `/metrics`) on HOST; 0 serves none. The other roles serve these on PORT.
   */
  workerHttpPort: number;
  /**
   * Where `/metrics` is served: on its own listener at this port (on HOST) and nowhere else, or,
   * undefined, on the process's HTTP port (PORT, or WORKER_HTTP_PORT for the worker role).
   */
  metricsPort: number | undefined;
  /** When set, `/metrics` answers only `Authorization: Bearer <token>` (compared in constant time); else 401. */
  metricsToken: string | undefined;
  dataDir: string;
  databaseUrl: string | undefined;
  /** Pool size and the bounds on every wait for PostgreSQL (ignored on the embedded database). */
  postgres: PostgresOptions;
  /** Longest a health check waits for the database before answering 503 (`/health/ready`, `/<service>/health`). */
  healthTimeoutMs: number;
  logLevel: z.infer<typeof envSchema>['LOG_LEVEL'];
  masterKeys: string | undefined;
  hashSecret: string | undefined;
  accessTokenTtlSeconds: number;
  refreshTokenTtlSeconds: number;
  exchangeRateLimitPerMinute: number;
  bodyLimitBytes: number;
  /** Failed API-key and admin-key authentications per client address per minute, shared by all processes. */
  authFailuresPerMinute: number;
  /**
   * Proxies whose `X-Forwarded-For` is believed (IPs or CIDRs); empty, the socket address is the
   * client. Set it to the load balancer's addresses, or every client shares one rate-limit bucket.
   */
  trustProxy: string[];
  /** Origins browsers may call the API from (CORS); empty, no cross-origin access. Never reflected. */
  corsOrigins: string[];
  /** Minimum time between two fetches of an IdP's JWKS (an unknown kid triggers a refetch). */
  jwksRefetchCooldownSeconds: number;
  /** S3 settings; without a bucket, objects go to DATA_DIR/objects behind our own signed URLs. */
  s3:
    | { bucket: string; region: string; endpoint?: string; forcePathStyle: boolean; accessKeyId?: string; secretAccessKey?: string }
    | undefined;
  kycVerificationTtlHours: number;
  /** How long the sandbox KYC provider takes before its asynchronous callback. */
  kycSandboxAsyncDelayMs: number;
  /** How long the sandbox KYC provider takes to answer a submission (to try slow or hung vendors). */
  kycSandboxSubmitDelayMs: number;
  /**
   * How long a request may hold work in progress (an Idempotency-Key, a KYC submission) before the
   * work counts as interrupted by a crash: the key's retry runs, the submission is failed.
   */
  inProgressLeaseSeconds: number;
  accreditationValidityDays: number;
  /** CIDRs webhooks may reach although they are not public (tests, local development). */
  webhookEgressAllowlist: string | undefined;
  /**
   * Development mode (embedded database, NODE_ENV not `production`) with WEBHOOK_EGRESS_ALLOWLIST
   * unset: webhooks may reach loopback receivers, and `serve` says so at start. Never on PostgreSQL.
   */
  loopbackWebhooksByDefault: boolean;
  webhookTimeoutMs: number;
  webhookRetryScheduleSeconds: number[];
  webhookSecretGraceSeconds: number;
  webhookDisableAfterHours: number;
  /** How often an idle worker looks for work when no NOTIFY woke it. */
  workerPollMs: number;
  /** How long a worker owns a delivery it claimed; after that another worker may retry it. */
  webhookLeaseSeconds: number;
  /** On SIGTERM, how long the worker waits for sends in flight before abandoning them and exiting. */
  workerDrainSeconds: number;
  /** Real Stripe when set; otherwise the local Stripe double runs in-process. */
  stripe: { secretKey: string; webhookSecret: string; apiBase?: string } | undefined;
  stripeDoublePort: number;
  /** Accept http:// (not only https://) for IdP and other outbound URLs: development only. */
  allowInsecureHttp: boolean;
  /** Serve the built-in demo identity provider under /demo-idp. */
  demoIdp: boolean;
  /** SMTP when set; otherwise mail is kept in the outbox table, read with GET /admin/mail. */
  smtpUrl: string | undefined;
  mailFrom: string;
  keyserver: {
    networkPassphrase: string;
    /** Wallets must confirm their email before GET /wallets/{id} answers. */
    emailVerification: boolean;
    /** Where verification links point: `<clientUrl>/<payload>`. */
    clientUrl: string;
    defaultSignerRole: number;
    kycRecoverySignerRole: number;
    sessionTtlSeconds: number;
    totpIssuer: string;
    /** Per client address, for wallet fetch, KDF by email and factor verification. */
    rateLimitPerMinute: number;
    /** How far a signed `date` may be from the server's clock, either way; also the replay window. */
    signatureSkewSeconds: number;
    /** Every write must sign `date` and `digest`, and a signature is accepted once. */
    strictSignatures: boolean;
    /** Code and verification mails to one address per hour (KYC recovery, resend verification). */
    mailsPerAddressPerHour: number;
    invitesPerRequest: number;
    invitesPerAccountPerDay: number;
  };
};

/** The configuration is invalid; the message is one line naming each variable at fault. */
export class ConfigError extends Error {}

const list = (value: string | undefined): string[] =>
  (value ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);

/**
 * `X_FILE=/path` stands for `X=<the file's content, trimmed>` for every variable X below, so
 * secrets can come from mounted files (container secrets). Setting both X and X_FILE is an error.
 */
function readFileVariables(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const resolved = { ...env };
  for (const name of Object.keys(envSchema.shape)) {
    const file = env[`${name}_FILE`];
    if (file === undefined || file === '') continue;
    if (env[name] !== undefined) throw new ConfigError(`Invalid configuration: set ${name} or ${name}_FILE, not both`);
    try {
      resolved[name] = fs.readFileSync(file, 'utf8').trim();
    } catch (error) {
      throw new ConfigError(
        `Invalid configuration: ${name}_FILE: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
      );
    }
  }
  return resolved;
}

/** The loopback ranges development mode lets webhooks reach (a receiver on this machine). */
export const LOOPBACK_RANGES = '127.0.0.0/8,::1/128';

/** Reads and validates the environment; throws `ConfigError`. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = envSchema.safeParse(readFileVariables(env));
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new ConfigError(`Invalid configuration: ${problems.join('; ')}`);
  }
  const e = parsed.data;
  if (e.STRIPE_SECRET_KEY && !e.STRIPE_WEBHOOK_SECRET)
    throw new ConfigError('Invalid configuration: STRIPE_WEBHOOK_SECRET: required when STRIPE_SECRET_KEY is set');
  const embedded = e.DATABASE_URL === undefined;
  const loopbackWebhooksByDefault = embedded && e.NODE_ENV !== 'production' && e.WEBHOOK_EGRESS_ALLOWLIST === undefined;
  const publicUrl = (e.PUBLIC_URL ?? `http://localhost:${e.PORT}`).replace(/\/$/, '');
  return {
    port: e.PORT,
    host: e.HOST ?? (embedded ? '127.0.0.1' : '0.0.0.0'),
    publicUrl,
    workerHttpPort: e.WORKER_HTTP_PORT,
    metricsPort: e.METRICS_PORT,
    metricsToken: e.METRICS_TOKEN,
    dataDir: path.resolve(e.DATA_DIR),
    databaseUrl: e.DATABASE_URL,
    postgres: {
      poolSize: e.DB_POOL_SIZE,
      connectTimeoutMs: e.DB_CONNECT_TIMEOUT_MS,
      statementTimeoutMs: e.DB_STATEMENT_TIMEOUT_MS,
      lockTimeoutMs: e.DB_LOCK_TIMEOUT_MS,
      idleInTransactionTimeoutMs: e.DB_IDLE_IN_TRANSACTION_TIMEOUT_MS,
      queryTimeoutMs: e.DB_QUERY_TIMEOUT_MS,
    },
    healthTimeoutMs: e.HEALTH_TIMEOUT_MS,
    logLevel: e.LOG_LEVEL,
    masterKeys: e.MASTER_KEYS,
    hashSecret: e.HASH_SECRET,
    accessTokenTtlSeconds: e.ACCESS_TOKEN_TTL_SECONDS,
    refreshTokenTtlSeconds: e.REFRESH_TOKEN_TTL_SECONDS,
    exchangeRateLimitPerMinute: e.EXCHANGE_RATE_LIMIT_PER_MINUTE,
    bodyLimitBytes: e.BODY_LIMIT_BYTES,
    authFailuresPerMinute: e.AUTH_FAILURES_PER_MINUTE,
    trustProxy: list(e.TRUST_PROXY),
    corsOrigins: list(e.CORS_ORIGINS),
    jwksRefetchCooldownSeconds: e.JWKS_REFETCH_COOLDOWN_SECONDS,
    s3: e.S3_BUCKET
      ? {
          bucket: e.S3_BUCKET,
          region: e.S3_REGION,
          endpoint: e.S3_ENDPOINT,
          forcePathStyle: e.S3_FORCE_PATH_STYLE,
          accessKeyId: e.S3_ACCESS_KEY_ID,
          secretAccessKey: e.S3_SECRET_ACCESS_KEY,
        }
      : undefined,
    kycVerificationTtlHours: e.KYC_VERIFICATION_TTL_HOURS,
    kycSandboxAsyncDelayMs: e.KYC_SANDBOX_ASYNC_DELAY_MS,
    kycSandboxSubmitDelayMs: e.KYC_SANDBOX_SUBMIT_DELAY_MS,
    inProgressLeaseSeconds: e.IN_PROGRESS_LEASE_SECONDS,
    accreditationValidityDays: e.ACCREDITATION_VALIDITY_DAYS,
    webhookEgressAllowlist: loopbackWebhooksByDefault ? LOOPBACK_RANGES : e.WEBHOOK_EGRESS_ALLOWLIST,
    loopbackWebhooksByDefault,
    webhookTimeoutMs: e.WEBHOOK_TIMEOUT_MS,
    webhookRetryScheduleSeconds: e.WEBHOOK_RETRY_SCHEDULE_SECONDS.split(',').map(Number),
    webhookSecretGraceSeconds: e.WEBHOOK_SECRET_GRACE_SECONDS,
    webhookDisableAfterHours: e.WEBHOOK_DISABLE_AFTER_HOURS,
    workerPollMs: e.WORKER_POLL_MS,
    webhookLeaseSeconds: e.WEBHOOK_LEASE_SECONDS,
    workerDrainSeconds: e.WORKER_DRAIN_SECONDS,
    stripe: e.STRIPE_SECRET_KEY
      ? { secretKey: e.STRIPE_SECRET_KEY, webhookSecret: e.STRIPE_WEBHOOK_SECRET ?? '', apiBase: e.STRIPE_API_BASE }
      : undefined,
    stripeDoublePort: e.STRIPE_DOUBLE_PORT,
    allowInsecureHttp: e.ALLOW_INSECURE_HTTP ?? embedded,
    demoIdp: e.DEMO_IDP ?? embedded,
    smtpUrl: e.SMTP_URL,
    mailFrom: e.MAIL_FROM,
    keyserver: {
      networkPassphrase: e.KEYSERVER_NETWORK_PASSPHRASE,
      emailVerification: e.KEYSERVER_EMAIL_VERIFICATION,
      clientUrl: (e.KEYSERVER_CLIENT_URL ?? `${publicUrl}/verify`).replace(/\/$/, ''),
      defaultSignerRole: e.KEYSERVER_DEFAULT_SIGNER_ROLE,
      kycRecoverySignerRole: e.KEYSERVER_KYC_RECOVERY_SIGNER_ROLE,
      sessionTtlSeconds: e.KEYSERVER_SESSION_TTL_SECONDS,
      totpIssuer: e.KEYSERVER_TOTP_ISSUER,
      rateLimitPerMinute: e.KEYSERVER_RATE_LIMIT_PER_MINUTE,
      signatureSkewSeconds: e.KEYSERVER_SIGNATURE_SKEW_SECONDS,
      strictSignatures: e.KEYSERVER_STRICT_SIGNATURES,
      mailsPerAddressPerHour: e.KEYSERVER_MAILS_PER_ADDRESS_PER_HOUR,
      invitesPerRequest: e.KEYSERVER_INVITES_PER_REQUEST,
      invitesPerAccountPerDay: e.KEYSERVER_INVITES_PER_ACCOUNT_PER_DAY,
    },
  };
}
