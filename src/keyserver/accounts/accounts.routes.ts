import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Clock } from '../../platform/clock.ts';
import type { Db } from '../../platform/db/database.ts';
import { badRequest, notFound } from '../jsonapi.ts';
import { accountIdSchema, signerResourceSchema, toNewSigner, noContentResponse } from '../schemas.ts';
import { RECOVERY_SIGNER_ROLE, type AccountsService } from './accounts.service.ts';
import type { SignerRow } from './accounts.repo.ts';

export type AccountsRoutesOptions = {
  accounts: AccountsService;
  db: Db;
  clock: Clock;
  networkPassphrase: string;
  defaultSignerRole: number;
  kycRecoverySignerRole: number;
};

const signerResource = (signer: SignerRow) => ({
  type: 'signers',
  id: signer.publicKey,
  attributes: { weight: signer.weight, identity: signer.identity, details: JSON.parse(signer.details) as unknown },
  relationships: {
    account: { data: { type: 'accounts', id: signer.accountId } },
    role: { data: { type: 'signer-roles', id: String(signer.roleId) } },
  },
});

/** Network details, key-values and account signers: what TokenD clients read from the chain's API. */
export async function accountsRoutes(app: FastifyInstance, options: AccountsRoutesOptions) {
  const { accounts } = options;
  const routes = app.withTypeProvider<ZodTypeProvider>();
  const keyValues: Record<string, number> = {
    'signer_role:default': options.defaultSignerRole,
    'signer_role:recovery': RECOVERY_SIGNER_ROLE,
    kyc_recovery_signer_role: options.kycRecoverySignerRole,
  };

  routes.get('/', { schema: { tags: ['key server'], summary: 'Network details (passphrase, master account)' } }, async () => {
    const master = await accounts.masterAccount();
    return {
      network_passphrase: options.networkPassphrase,
      master_account_id: master,
      admin_account_id: master,
      current_time: Math.floor(options.clock.now().getTime() / 1000),
      tx_expiration_period: 604_800,
      precision: 1_000_000,
      environment_name: 'tranche',
    };
  });

  routes.get(
    '/v3/key_values/:key',
    { schema: { tags: ['key server'], summary: 'A system key-value (signer roles)', params: z.object({ key: z.string().max(100) }) } },
    async (request) => {
      const value = keyValues[request.params.key];
      if (value === undefined) throw notFound(`key-value ${request.params.key} not found`);
      return { data: { type: 'key-values', id: request.params.key, attributes: { value: { type: 'uint32', u32: value } } } };
    },
  );

  for (const path of ['/v3/accounts/:address/signers', '/accounts/:address/signers']) {
    routes.get(
      path,
      { schema: { tags: ['key server'], summary: "An account's signers", params: z.object({ address: accountIdSchema }) } },
      async (request) => {
        if (!(await accounts.exists(request.params.address))) throw notFound('account not found');
        return { data: (await accounts.signers(request.params.address)).map(signerResource) };
      },
    );
  }

  routes.post(
    '/accounts',
    {
      schema: {
        response: noContentResponse,
        tags: ['key server'],
        summary: 'Create an account with signers',
        body: z.object({
          data: z.object({
            type: z.string().optional(),
            id: accountIdSchema,
            relationships: z.object({
              signers: z.object({
                data: z
                  .array(z.object({ id: accountIdSchema }))
                  .min(1)
                  .max(20),
              }),
            }),
          }),
          included: z.array(signerResourceSchema).min(1).max(20),
        }),
      },
    },
    async (request, reply) => {
      const { data, included } = request.body;
      const signers = data.relationships.signers.data.map((ref, index) => {
        const signer = included.find((item) => item.id === ref.id);
        if (!signer) throw badRequest(`/data/relationships/signers/data/${index}/id`, 'signer is not in included');
        return toNewSigner(signer);
      });
      await options.db.transaction((tx) => accounts.createAccount(data.id, signers, tx));
      return reply.code(204).send(null);
    },
  );

  routes.post(
    '/accounts/:address/signers',
    {
      schema: {
        tags: ['key server'],
        summary: 'Add a signer to an account (admin)',
        params: z.object({ address: accountIdSchema }),
        body: z.object({ data: signerResourceSchema.extend({ type: z.enum(['signer', 'identity-signer']) }) }),
      },
    },
    async (request, reply) => {
      await accounts.authorize(request, { admin: true });
      if (!(await accounts.exists(request.params.address))) throw notFound('account not found');
      const signer = toNewSigner({ ...request.body.data, type: 'signer' });
      await options.db.transaction((tx) => accounts.addSigner(request.params.address, signer, tx));
      return reply.code(201).send({ data: { type: 'signer', id: signer.publicKey, attributes: request.body.data.attributes } });
    },
  );
}
