import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { PostgresOptions } from './platform/db/database.ts';

const booleanFlag = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((value) => value === 'true' || value === '1' || value === 'yes');

const envSchema = z
  .object({
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
    WEBHOOK_CONCURRENCY: z.coerce.number().int().min(1).max(1024).default(64),
    WORKER_DRAIN_SECONDS: z.coerce.number().min(0).max(3600).default(10),
    AUDIT_ANCHOR_INTERVAL_SECONDS: z.coerce.number().int().min(0).max(86_400).default(3600),
    WEBHOOK_RETENTION_DAYS: z.coerce.number().int().min(0).max(36_500).default(30),
    STRIPE_SECRET_KEY: z
      .string()
      .regex(/^(sk|rk)_(test|live)_\w+$/, 'must be a Stripe secret key')
      .optional(),
    STRIPE_WEBHOOK_SECRET: z.string().startsWith('whsec_').optional(),
    STRIPE_API_BASE: z.url().optional(),
    CHECKOUT_RETURN_ORIGINS: z
      .string()
      .regex(/^https?:\/\/[^\s,/]+(\s*,\s*https?:\/\/[^\s,/]+)*$/, 'expected comma-separated origins (https://app.example.com)')
      .optional(),
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
  })
  // A send must end (or time out) well within the lease of its delivery: past the lease another
  // worker may claim the delivery and send it a second time while the first send still runs.
  .superRefine((env, ctx) => {
    if (env.WEBHOOK_TIMEOUT_MS * 2 >= env.WEBHOOK_LEASE_SECONDS * 1000)
      ctx.addIssue({
        code: 'custom',
        path: ['WEBHOOK_TIMEOUT_MS'],
        message: `must be less than half of WEBHOOK_LEASE_SECONDS (${env.WEBHOOK_TIMEOUT_MS} ms is not less than half of ${env.WEBHOOK_LEASE_SECONDS} s), else a send can outlast its lease and another worker send the delivery again: set WEBHOOK_LEASE_SECONDS above ${Math.floor((env.WEBHOOK_TIMEOUT_MS * 2) / 1000)} or WEBHOOK_TIMEOUT_MS below ${env.WEBHOOK_LEASE_SECONDS * 500}`,
      });
  });

/** What one environment variable does, for the README's configuration table (`npm run openapi` writes it). */
export type SettingDoc = {
  /** The default as a person reads it, where the parsed default alone would mislead (e.g. "required on PostgreSQL"). */
  default?: string;
  meaning: string;
};

type SettingName = keyof z.input<typeof envSchema>;

/**
 * Every variable of `envSchema`, documented (the type makes a missing one a compile error), plus
 * `HEALTH_PORT`, which only the container health check reads. The README's table is generated
 * from this and `envSchema`'s defaults, so the two can't drift.
 */
export const settingDocs: Record<SettingName | 'HEALTH_PORT', SettingDoc> = {
  PORT: { meaning: 'HTTP port' },
  HOST: { default: '`127.0.0.1` on the embedded database, else `0.0.0.0`', meaning: 'listen address' },
  PUBLIC_URL: {
    default: '`http://localhost:$PORT`',
    meaning: 'external URL; the access-token issuer is `$PUBLIC_URL/identity` (the same in every process of a deployment)',
  },
  HEALTH_PORT: { default: '`$PORT`', meaning: 'the port the container `HEALTHCHECK` (`dist/healthcheck.js`) asks for `/health/ready`' },
  WORKER_HTTP_PORT: {
    meaning:
      "`--role worker`: port (on `HOST`) of the worker's `/health/live`, `/health/ready` and `/metrics`; `0` serves no HTTP. The other roles serve these on `PORT`",
  },
  METRICS_PORT: {
    meaning:
      "serve `/metrics` on this port (on `HOST`) only, not on `PORT` or `WORKER_HTTP_PORT`; unset, `/metrics` is on the process's HTTP port",
  },
  METRICS_TOKEN: {
    meaning:
      'at least 16 characters; `/metrics` then answers only `Authorization: Bearer <token>` (else 401). Unset, `/metrics` is open to whoever reaches the port',
  },
  DATA_DIR: { meaning: 'embedded database files, the generated keyring and local object storage' },
  DATABASE_URL: {
    meaning:
      '`postgres://...`: run on a PostgreSQL server (15 or newer) instead of the embedded database. Its `options` parameter is kept; connections add `-c plan_cache_mode=force_custom_plan` to it (a connection pooler in front must pass `options` through)',
  },
  NODE_ENV: {
    meaning:
      'development mode is the embedded database with `NODE_ENV` not `production`: it allows webhooks to loopback and `http://` checkout return URLs. (`ALLOW_INSECURE_HTTP` and `DEMO_IDP` follow the database alone.)',
  },
  LOG_LEVEL: { meaning: 'pino level' },
  MASTER_KEYS: {
    default: 'required on PostgreSQL; embedded: generated in `DATA_DIR/keyring.json`',
    meaning: '`kid:base64(32 bytes)[,kid:key...]`; the first wraps new data keys, the rest only unwrap (`tranche keys generate`)',
  },
  HASH_SECRET: {
    default: 'required on PostgreSQL; embedded: generated in `DATA_DIR/keyring.json`',
    meaning: 'at least 32 characters; keys the digests of API keys, refresh tokens and the blind indexes of PII',
  },
  DB_POOL_SIZE: { meaning: 'PostgreSQL connections per process' },
  DB_CONNECT_TIMEOUT_MS: {
    meaning: 'longest wait to open a connection or get one from the pool; then the request answers 503 `DATABASE_UNAVAILABLE`',
  },
  DB_STATEMENT_TIMEOUT_MS: { meaning: 'PostgreSQL `statement_timeout` (0: none); a cancelled statement answers 503' },
  DB_LOCK_TIMEOUT_MS: { meaning: 'PostgreSQL `lock_timeout` (0: none); a lock not granted in time answers 503' },
  DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: { meaning: 'PostgreSQL `idle_in_transaction_session_timeout` (0: none)' },
  DB_QUERY_TIMEOUT_MS: {
    meaning: 'client side: a query with no answer (network partition) fails with 503 and its connection is dropped (0: none)',
  },
  HEALTH_TIMEOUT_MS: {
    meaning: '`/health/ready` and `/<service>/health` answer 503 when the database has not answered within this long',
  },
  ACCESS_TOKEN_TTL_SECONDS: { meaning: 'access-token lifetime' },
  REFRESH_TOKEN_TTL_SECONDS: { meaning: 'refresh-token lifetime (rotated on every use)' },
  EXCHANGE_RATE_LIMIT_PER_MINUTE: { meaning: 'token exchanges per org API key per minute (shared by all processes)' },
  JWKS_REFETCH_COOLDOWN_SECONDS: { meaning: "minimum time between two fetches of an IdP's JWKS" },
  BODY_LIMIT_BYTES: { meaning: 'larger request bodies get 413' },
  ALLOW_INSECURE_HTTP: {
    default: '`true` on the embedded database, else `false`',
    meaning: 'accept `http://` IdP URLs (development only)',
  },
  DEMO_IDP: { default: '`true` on the embedded database, else `false`', meaning: 'serve the demo identity provider under `/demo-idp`' },
  AUTH_FAILURES_PER_MINUTE: {
    meaning: 'failed API-key and admin-key attempts per client address per minute; past it every attempt from that address gets 429',
  },
  TRUST_PROXY: {
    meaning:
      'comma-separated IPs/CIDRs of your load balancers; only their `X-Forwarded-For` names the client address (rate limits key on it)',
  },
  CORS_ORIGINS: {
    meaning: 'comma-separated origins browsers may call the API from (`https://app.example.com`); unset, no cross-origin access',
  },
  IN_PROGRESS_LEASE_SECONDS: {
    meaning:
      'how long a request may hold work in progress without renewing it (a live request renews every third of it); after it, an `Idempotency-Key` left in progress by a crashed process lets the retry run, and a KYC verification whose submission died is failed so the user can submit again',
  },
  S3_BUCKET: {
    meaning: 'store uploaded documents in this S3 bucket (presigned URLs); unset, in `DATA_DIR/objects` behind our own signed URLs',
  },
  S3_REGION: { meaning: "the bucket's region" },
  S3_ENDPOINT: { meaning: 'an S3-compatible endpoint (MinIO, R2, ...) instead of AWS' },
  S3_FORCE_PATH_STYLE: { meaning: 'path-style bucket URLs (most S3-compatible stores need it)' },
  S3_ACCESS_KEY_ID: { default: "unset: the AWS SDK's default credential chain", meaning: 'S3 credentials (with `S3_SECRET_ACCESS_KEY`)' },
  S3_SECRET_ACCESS_KEY: { default: "unset: the AWS SDK's default credential chain", meaning: 'S3 credentials (with `S3_ACCESS_KEY_ID`)' },
  KYC_VERIFICATION_TTL_HOURS: {
    meaning: 'a KYC verification still pending or waiting on the user (action required) expires after this long',
  },
  KYC_SANDBOX_ASYNC_DELAY_MS: {
    meaning: 'how long the sandbox KYC provider takes before its asynchronous outcomes (see docs/kyc-sandbox.md)',
  },
  KYC_SANDBOX_SUBMIT_DELAY_MS: {
    meaning: 'how long the sandbox KYC provider takes to answer a submission (to try a slow or hung vendor)',
  },
  ACCREDITATION_VALIDITY_DAYS: { meaning: 'a verified accreditation counts for this many days after its approval (Reg D 506(c))' },
  WEBHOOK_EGRESS_ALLOWLIST: {
    default: 'loopback in development, else unset',
    meaning: 'CIDRs webhooks may reach although not public; development: embedded database, `NODE_ENV` not `production`',
  },
  WEBHOOK_TIMEOUT_MS: {
    meaning:
      'a webhook send that has not answered within this long fails (and is retried); 100 to 60 000, and less than half of `WEBHOOK_LEASE_SECONDS`',
  },
  WEBHOOK_RETRY_SCHEDULE_SECONDS: {
    meaning: 'waits before each retry of a failed delivery, comma-separated; after the last, the delivery fails',
  },
  WEBHOOK_SECRET_GRACE_SECONDS: {
    meaning: 'after a secret rotation, deliveries are also signed with the old secret for this long (0: the old one stops at once)',
  },
  WEBHOOK_DISABLE_AFTER_HOURS: { meaning: 'an endpoint whose every delivery failed for this long is disabled' },
  WORKER_POLL_MS: { meaning: 'how often an idle webhook worker looks for work when no `NOTIFY` woke it' },
  WEBHOOK_LEASE_SECONDS: {
    meaning:
      'how long a worker owns a delivery it claimed; after it another worker may send it; 1 to 3 600, and more than twice `WEBHOOK_TIMEOUT_MS`, so a send ends within its lease',
  },
  WEBHOOK_CONCURRENCY: {
    meaning:
      'webhook sends a worker has in flight at once (1 to 1 024); it holds at most four times as many deliveries claimed and not yet recorded, which bounds what a killed worker sends twice',
  },
  WORKER_DRAIN_SECONDS: {
    meaning:
      'on SIGTERM the webhook worker (`--role worker`, or inside `serve`) stops claiming, gives back what it claimed but did not send, and waits this long for sends in flight; then it cuts them short (recorded as `interrupted` attempts, due again at once) and exits 0. The mail sender finishes the mail it is sending and gives back the rest of its claim',
  },
  AUDIT_ANCHOR_INTERVAL_SECONDS: {
    meaning:
      'how often the worker (`--role worker`, or inside `serve`) signs the head of every audit chain that moved (0: never; `tranche audit anchor` does it by hand); entries deleted after an anchor are caught by `audit verify`',
  },
  WEBHOOK_RETENTION_DAYS: {
    meaning:
      'finished webhook deliveries (succeeded, exhausted, cancelled, skipped) with their attempts, the messages (event bodies) none is left of, and dispatched outbox events, older than this many days are deleted by the worker, in batches of 1 000 once a minute; `0` keeps them forever',
  },
  STRIPE_SECRET_KEY: {
    default: 'unset: the local Stripe double',
    meaning: '`sk_test_...` or `sk_live_...`: take payments with Stripe Checkout (needs `STRIPE_WEBHOOK_SECRET`)',
  },
  STRIPE_WEBHOOK_SECRET: {
    meaning: '`whsec_...`: the signing secret of your Stripe webhook endpoint (`$PUBLIC_URL/issuance/payments/stripe/webhook`)',
  },
  STRIPE_API_BASE: { meaning: 'another Stripe API base URL (a mock); normally unset' },
  CHECKOUT_RETURN_ORIGINS: {
    meaning:
      "comma-separated origins the `successUrl` / `cancelUrl` of a checkout may be on (`https://app.example.com`), for every org besides each org's own (`tranche org update --redirect-origin`); when neither names any, any origin (https only, outside development mode: on PostgreSQL or with `NODE_ENV=production`)",
  },
  SMTP_URL: {
    meaning:
      '`smtp://user:pass@host:587`: mail is queued, sealed, in the `mail_outbox` table with the change it tells of and sent by the worker (`serve --role all|worker`), retried for about 29 h; unset, it is kept there (read with `GET /admin/mail`)',
  },
  MAIL_FROM: { meaning: 'the sender of every mail' },
  KEYSERVER_NETWORK_PASSPHRASE: { meaning: 'network passphrase TokenD clients sign transaction envelopes with (served at `GET /`)' },
  KEYSERVER_EMAIL_VERIFICATION: { meaning: 'wallets must confirm their email before login' },
  KEYSERVER_CLIENT_URL: { default: '`$PUBLIC_URL/verify`', meaning: 'verification links are `<client url>/<base64url payload>`' },
  KEYSERVER_DEFAULT_SIGNER_ROLE: { meaning: "the signer role id of a wallet's own signers (`/v3/key_values/signer_role:default`)" },
  KEYSERVER_KYC_RECOVERY_SIGNER_ROLE: { meaning: 'the signer role id of keys added by KYC recovery (never an owner)' },
  KEYSERVER_SESSION_TTL_SECONDS: { meaning: 'key server session lifetime (extended by `GET /sessions/:id`)' },
  KEYSERVER_TOTP_ISSUER: { meaning: 'the issuer name authenticator apps show for TOTP factors' },
  KEYSERVER_RATE_LIMIT_PER_MINUTE: { meaning: 'per client address: wallet fetch, KDF, email verification, factor verification' },
  KEYSERVER_SIGNATURE_SKEW_SECONDS: {
    meaning: 'how far a signed `date` may be from the server clock, either way; also how long strict mode remembers a signature',
  },
  KEYSERVER_STRICT_SIGNATURES: {
    meaning: "every key server write must sign `date` and `digest` (the body's SHA-256) and is accepted once; see below",
  },
  KEYSERVER_MAILS_PER_ADDRESS_PER_HOUR: {
    meaning: 'verification links and codes (sign-up, resend, KYC recovery, email 2FA) mailed to one address per hour',
  },
  KEYSERVER_INVITES_PER_REQUEST: { meaning: 'invites one `POST /invites` may send' },
  KEYSERVER_INVITES_PER_ACCOUNT_PER_DAY: { meaning: 'invites one inviting account may send per day' },
};

/** The README's configuration table (markdown), from `settingDocs` and the defaults of `envSchema`. */
export function settingsTable(): string {
  const defaults = envSchema.parse({}) as Record<string, unknown>;
  const rows = Object.entries(settingDocs).map(([name, doc]) => {
    const parsed = defaults[name];
    const fallback = parsed === undefined ? 'unset' : `\`${JSON.stringify(parsed).replace(/^"|"$/g, '')}\``;
    return `| \`${name}\` | ${doc.default ?? fallback} | ${doc.meaning.replace(/\|/g, '\\|')} |`;
  });
  return ['| variable | default | meaning |', '| --- | --- | --- |', ...rows].join('\n');
}

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
  /** Webhook sends in flight per worker (`WEBHOOK_CONCURRENCY`). */
  webhookConcurrency: number;
  /** On SIGTERM, how long the worker waits for sends in flight before abandoning them and exiting. */
  workerDrainSeconds: number;
  /** How often the worker anchors the audit chains' heads (seconds; 0: never). */
  auditAnchorIntervalSeconds: number;
  /** Finished deliveries (with their attempts) and dispatched outbox events older than this are pruned; 0 keeps them. */
  webhookRetentionDays: number;
  /** Real Stripe when set; otherwise the local Stripe double is served under /stripe-double. */
  stripe: { secretKey: string; webhookSecret: string; apiBase?: string } | undefined;
  /**
   * Where a Stripe Checkout may send the investor back to (`successUrl` / `cancelUrl`).
   * `origins`: the allowed origins; empty, any origin. `allowHttp`: http:// return URLs are
   * accepted, only in development mode (embedded database, NODE_ENV not `production`).
   */
  checkoutReturn: { origins: string[]; allowHttp: boolean };
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
    webhookConcurrency: e.WEBHOOK_CONCURRENCY,
    workerDrainSeconds: e.WORKER_DRAIN_SECONDS,
    auditAnchorIntervalSeconds: e.AUDIT_ANCHOR_INTERVAL_SECONDS,
    webhookRetentionDays: e.WEBHOOK_RETENTION_DAYS,
    stripe: e.STRIPE_SECRET_KEY
      ? { secretKey: e.STRIPE_SECRET_KEY, webhookSecret: e.STRIPE_WEBHOOK_SECRET ?? '', apiBase: e.STRIPE_API_BASE }
      : undefined,
    checkoutReturn: {
      origins: list(e.CHECKOUT_RETURN_ORIGINS).map((origin) => new URL(origin).origin),
      allowHttp: embedded && e.NODE_ENV !== 'production',
    },
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
