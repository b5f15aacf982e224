import type { FastifyInstance } from 'fastify';
import { ping, type Db } from '../platform/db/database.ts';
import { registerServiceInfo } from '../platform/http/service-info.ts';
import type { ObjectStorage } from '../platform/storage/storage.ts';
import { offeringsRepo } from './offerings/offerings.repo.ts';
import { offeringsRoutes } from './offerings/offerings.routes.ts';
import { offeringsService } from './offerings/offerings.service.ts';

export type IssuanceDeps = { db: Db; storage: ObjectStorage; version: string };

export function createIssuance(deps: IssuanceDeps) {
  const offerings = offeringsService({ db: deps.db, repo: offeringsRepo(deps.db), storage: deps.storage });

  return {
    offerings,
    async routes(app: FastifyInstance) {
      registerServiceInfo(app, {
        name: 'issuance',
        description: 'Offerings, securities, subscriptions, payments and the share ledger',
        version: deps.version,
        checkDatabase: () => ping(deps.db),
      });
      await app.register(offeringsRoutes, { offerings });
    },
  };
}

export type Issuance = ReturnType<typeof createIssuance>;
