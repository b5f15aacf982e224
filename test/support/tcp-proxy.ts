import net from 'node:net';

/**
 * A TCP proxy the test controls, between the app and PostgreSQL: `cut()` black-holes the link (new
 * connections are accepted and then hear nothing; bytes on open ones are dropped), as a network
 * partition does; `restore()` resets the connections cut off and forwards again.
 */
export async function startTcpProxy(target: { host: string; port: number }) {
  let cut = false;
  const pairs = new Set<{ client: net.Socket; upstream?: net.Socket; blackholed: boolean }>();
  const server = net.createServer((client) => {
    const pair: { client: net.Socket; upstream?: net.Socket; blackholed: boolean } = { client, blackholed: cut };
    pairs.add(pair);
    client.on('error', () => undefined);
    client.on('close', () => {
      pairs.delete(pair);
      pair.upstream?.destroy();
    });
    if (cut) return; // accepted, never answered
    const upstream = net.connect(target.port, target.host);
    pair.upstream = upstream;
    upstream.on('error', () => client.destroy());
    upstream.on('close', () => client.destroy());
    client.on('data', (chunk) => {
      if (!pair.blackholed) upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (!pair.blackholed) client.write(chunk);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    /** `url` with its host and port replaced by the proxy's. */
    through(url: string): string {
      const parsed = new URL(url);
      parsed.hostname = '127.0.0.1';
      parsed.port = String(port);
      return parsed.toString();
    },
    cut() {
      cut = true;
      for (const pair of pairs) pair.blackholed = true;
    },
    restore() {
      cut = false;
      for (const pair of pairs) {
        if (pair.blackholed) {
          pair.client.resetAndDestroy();
          pair.upstream?.destroy();
        }
      }
    },
    async close() {
      for (const pair of pairs) {
        pair.client.destroy();
        pair.upstream?.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export type TcpProxy = Awaited<ReturnType<typeof startTcpProxy>>;
