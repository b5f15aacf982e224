import path from 'node:path';
import { z } from 'zod';

const booleanFlag = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((value) => value === 'true' || value === '1' || value === 'yes');

const envSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  HOST: z.string().min(1).default('0.0.0.0'),
  PUBLIC_URL: z.url().optional(),
  DATA_DIR: z.string().min(1).default('./data'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
    .optional(),
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
});

export type Config = {
  port: number;
  host: string;
  publicUrl: string;
  dataDir: string;
  databaseUrl: string | undefined;
  logLevel: z.infer<typeof envSchema>['LOG_LEVEL'];
  masterKeys: string | undefined;
  hashSecret: string | undefined;
  accessTokenTtlSeconds: number;
  refreshTokenTtlSeconds: number;
  exchangeRateLimitPerMinute: number;
  bodyLimitBytes: number;
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
  };
};

export class ConfigError extends Error {}

/** The loopback ranges development mode lets webhooks reach (a receiver on this machine). */
export const LOOPBACK_RANGES = '127.0.0.0/8,::1/128';

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `  ${issue.path.join('.')}: ${issue.message}`);
    throw new ConfigError(`Invalid configuration:\n${problems.join('\n')}`);
  }
  const e = parsed.data;
  if (e.STRIPE_SECRET_KEY && !e.STRIPE_WEBHOOK_SECRET)
    throw new ConfigError('Invalid configuration:\n  STRIPE_WEBHOOK_SECRET: required when STRIPE_SECRET_KEY is set');
  const embedded = e.DATABASE_URL === undefined;
  const loopbackWebhooksByDefault = embedded && e.NODE_ENV !== 'production' && e.WEBHOOK_EGRESS_ALLOWLIST === undefined;
  const publicUrl = (e.PUBLIC_URL ?? `http://localhost:${e.PORT}`).replace(/\/$/, '');
  return {
    port: e.PORT,
    host: e.HOST,
    publicUrl,
    dataDir: path.resolve(e.DATA_DIR),
    databaseUrl: e.DATABASE_URL,
    logLevel: e.LOG_LEVEL,
    masterKeys: e.MASTER_KEYS,
    hashSecret: e.HASH_SECRET,
    accessTokenTtlSeconds: e.ACCESS_TOKEN_TTL_SECONDS,
    refreshTokenTtlSeconds: e.REFRESH_TOKEN_TTL_SECONDS,
    exchangeRateLimitPerMinute: e.EXCHANGE_RATE_LIMIT_PER_MINUTE,
    bodyLimitBytes: e.BODY_LIMIT_BYTES,
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
    },
  };
}
