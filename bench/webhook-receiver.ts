// The webhook benchmark's receiver, in a process of its own so that the sender's CPU time is the
// sender's alone: answers every POST with 200 and reports, every 25 ms over IPC, the `webhook-id`
// and path of each request with its arrival time (ms since the epoch, sub-millisecond).
import http from 'node:http';
import type { AddressInfo } from 'node:net';

let receipts: [string, number][] = [];
/** `<webhook-id> <path>`: one delivery. */
let posts = 0;
const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    posts++;
    const id = req.headers['webhook-id'];
    if (typeof id === 'string') receipts.push([`${id} ${req.url}`, performance.timeOrigin + performance.now()]);
    res.writeHead(200).end('ok');
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as AddressInfo).port }));
setInterval(() => {
  if (receipts.length === 0 && posts === 0) return;
  process.send!({ receipts, posts });
  receipts = [];
  posts = 0;
}, 25);
process.on('disconnect', () => process.exit(0));
