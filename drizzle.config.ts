import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'postgresql',
  schema: [
    './src/platform/platform.tables.ts',
    './src/identity/identity.tables.ts',
    './src/notifications/notifications.tables.ts',
    './src/issuance/issuance.tables.ts',
    './src/issuance/payments/stripe-double.tables.ts',
    './src/keyserver/keyserver.tables.ts',
  ],
  out: './migrations',
});
