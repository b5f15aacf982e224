import { eq, inArray } from 'drizzle-orm';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { beforeAll, describe, expect, it } from 'vitest';
import { egressPolicy } from '../../src/notifications/egress-guard.ts';
import { httpSender, type HttpSender, type SendResult } from '../../src/notifications/http-sender.ts';
import { webhookAttempts } from '../../src/notifications/notifications.tables.ts';
import type { TestApp } from '../support/harness.ts';
import { webhookSuite } from '../support/webhook-suite.ts';

// The pipelined dispatcher over real HTTP and the real database. The sender is the real one; some
// tests hold its answers back (a gate) to decide what is in flight, what waits in the queue, and
// which answers are recorded together.

const { app, closers, receiver, endpoint, emit, deliveriesOf, dispatcherWith } = webhookSuite({ webhookTimeoutMs: 500 });
let t: TestApp;
beforeAll(() => {
  t = app();
});

/** A real sender whose answers wait until `open()`; `sent` counts the sends that reached it. */
function gatedSender(timeoutMs = 5000) {
  const real = httpSender({ policy: egressPolicy('127.0.0.0/8'), timeoutMs });
  closers.push(() => real.close());
  let open: () => void = () => undefined;
  const opened = new Promise<void>((resolve) => (open = resolve));
  const answered: Promise<SendResult>[] = [];
  const sender: HttpSender = {
    send(url, headers, body, interrupt) {
      const result = real.send(url, headers, body, interrupt);
      answered.push(result);
      return result.then(async (value) => {
        await opened;
        return value;
      });
    },
    close: () => real.close(),
  };
  return { sender, open, answered, sent: () => answered.length };
}

const pipeline = (sender: HttpSender, options: { concurrency?: number; maxHeld?: number } = {}) => dispatcherWith(sender, options);

const until = async (check: () => boolean, timeoutMs = 10_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
};

describe('dispatcher pipeline error', () => {
  it('records the successes of other endpoints answered together with one of an endpoint deleted meanwhile', async () => {
    const target = await receiver();
    const kept = (await endpoint(`${target.url}/kept`)).id;
    const deleted = (await endpoint(`${target.url}/deleted`)).id;
    for (let i = 0; i < 4; i++) await emit({ verification_id: `v-${i}` });
    const gate = gatedSender();
    const d = pipeline(gate.sender);
    await d.fanOut();
    const pass = d.deliverDue();
    await until(() => gate.sent() === 8);
    await Promise.all(gate.answered);
    expect((await t.delete(`/notifications/webhooks/${deleted}`, { 'x-api-key': t.apiKey })).status).toBe(200);
    gate.open();
    await pass;

    // Every answer came back 200 in the same turn: the kept endpoint's deliveries are done, not
    // left `sending` to be sent again when their lease ends.
    const rows = await deliveriesOf([kept, deleted]);
    expect(rows.map((row) => [row.endpointId, row.status])).toEqual(Array.from({ length: 4 }, () => [kept, 'succeeded']));
    const attempts = await t.db
      .select()
      .from(webhookAttempts)
      .where(
        inArray(
          webhookAttempts.deliveryId,
          rows.map((row) => row.id),
        ),
      );
    expect(attempts).toHaveLength(4);
  });

  /**
   * Four deliveries to one endpoint with one send at a time: the first in flight, three waiting in
   * the queue; `change` (disable, delete) runs while the first is held, past the recheck time.
   */
  async function changeWhileQueued(change: (id: string) => Promise<{ status: number }>) {
    const target = await receiver();
    const id = (await endpoint(`${target.url}/hook`)).id;
    for (let i = 0; i < 4; i++) await emit({ verification_id: `v-${i}` });
    const gate = gatedSender();
    const d = pipeline(gate.sender, { concurrency: 1, maxHeld: 4 });
    await d.fanOut();
    const pass = d.deliverDue();
    await until(() => gate.sent() === 1);
    await Promise.all(gate.answered);
    t.clock.advance(2000);
    expect((await change(id)).status).toBe(200);
    gate.open();
    await pass;
    return { target, id };
  }

  it('sends nothing more to an endpoint disabled while its deliveries wait in the queue', async () => {
    const { target, id } = await changeWhileQueued((id) =>
      t.patch(`/notifications/webhooks/${id}`, { status: 'disabled' }, { 'x-api-key': t.apiKey }),
    );
    expect(target.received).toHaveLength(1);
    const rows = await deliveriesOf([id]);
    expect(rows.map((row) => row.status).sort()).toEqual(['cancelled', 'cancelled', 'cancelled', 'succeeded']);
  });

  it('sends nothing more to an endpoint deleted while its deliveries wait in the queue', async () => {
    const { target } = await changeWhileQueued((id) => t.delete(`/notifications/webhooks/${id}`, { 'x-api-key': t.apiKey }));
    expect(target.received).toHaveLength(1);
  });
});

/** A raw TCP endpoint that answers every request with `answer` (bytes, or a function of the socket). */
async function rawEndpoint(answer: (socket: net.Socket) => void) {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.once('data', () => answer(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
}

describe('dispatcher pipeline security', () => {
  const hostile: [string, (socket: net.Socket) => void, string][] = [
    [
      'a response that drips past the timeout',
      (socket) => {
        socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n');
        const drip = setInterval(() => (socket.destroyed ? clearInterval(drip) : socket.write('x')), 50);
      },
      'timeout',
    ],
    [
      'NUL bytes and invalid UTF-8 in the body',
      (socket) =>
        socket.end(
          Buffer.concat([
            Buffer.from('HTTP/1.1 500 X\r\ncontent-length: 8\r\n\r\n'),
            Buffer.from([0, 0xff, 0xfe, 0xc3, 0x28, 0, 0xed, 0xa0]),
          ]),
        ),
      'http',
    ],
    [
      'a huge chunked body',
      (socket) => {
        socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n');
        const chunk = Buffer.alloc(65536, 0x41);
        const pump = () => {
          while (!socket.destroyed && socket.write(`${chunk.length.toString(16)}\r\n${chunk.toString()}\r\n`));
          if (!socket.destroyed) socket.once('drain', pump);
        };
        pump();
      },
      'ok',
    ],
    [
      'a redirect',
      (socket) => socket.end('HTTP/1.1 307 Temporary Redirect\r\nlocation: http://169.254.169.254/\r\ncontent-length: 0\r\n\r\n'),
      'http',
    ],
    [
      '1xx before the answer',
      (socket) => socket.end('HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok'),
      'ok',
    ],
    [
      'a 101 nobody asked for',
      (socket) => socket.end('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n'),
      'any',
    ],
    ['garbage instead of HTTP', (socket) => socket.end('\u0000\u0001 not http at all\r\n\r\n'), 'any'],
  ];
  for (const [name, answer, expected] of hostile) {
    it(`records ${name} and is never wedged`, async () => {
      const id = (await endpoint(await rawEndpoint(answer))).id;
      await emit();
      const d = pipeline(httpSender({ policy: egressPolicy('127.0.0.0/8'), timeoutMs: 500 }));
      await d.fanOut();
      await d.deliverDue();
      const [row] = await deliveriesOf([id]);
      expect(row!.status).not.toBe('sending');
      const attempts = await t.db.select().from(webhookAttempts).where(eq(webhookAttempts.deliveryId, row!.id));
      expect(attempts).toHaveLength(1);
      if (expected === 'ok') expect(row!.status).toBe('succeeded');
      else if (expected !== 'any') expect(attempts[0]!.errorKind).toBe(expected);
    });
  }
});
