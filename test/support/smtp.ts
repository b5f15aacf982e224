import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

/** A mail as the SMTP server received it: the envelope's recipients and the raw message. */
export type ReceivedMail = { to: string[]; raw: string };

/**
 * A real SMTP server on 127.0.0.1 (nodemailer's smtp-server), without TLS or login, keeping what it
 * accepts. `refuse(address, command)` decides the reply to MAIL FROM and each RCPT TO: undefined
 * accepts, `{ code, message }` answers that SMTP reply (451: try later, 550: never). `stop()` closes the port and
 * `start()` opens it again on the same port (a server that went down and came back).
 */
export async function smtpServer() {
  const received: ReceivedMail[] = [];
  let refuse: (address: string, command: 'MAIL FROM' | 'RCPT TO') => { code: number; message: string } | undefined = () => undefined;
  let server: SMTPServer;
  let port = 0;

  async function start() {
    server = new SMTPServer({
      disabledCommands: ['STARTTLS', 'AUTH'],
      logger: false,
      onMailFrom(address, _session, callback) {
        const refusal = refuse(address.address, 'MAIL FROM');
        if (!refusal) return callback();
        callback(Object.assign(new Error(refusal.message), { responseCode: refusal.code }));
      },
      onRcptTo(address, _session, callback) {
        const refusal = refuse(address.address, 'RCPT TO');
        if (!refusal) return callback();
        callback(Object.assign(new Error(refusal.message), { responseCode: refusal.code }));
      },
      onData(stream, session, callback) {
        const chunks: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('end', () => {
          received.push({ to: session.envelope.rcptTo.map((rcpt) => rcpt.address), raw: Buffer.concat(chunks).toString('utf8') });
          callback();
        });
      },
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    port = (server.server.address() as AddressInfo).port;
  }

  await start();
  return {
    received,
    get url() {
      return `smtp://127.0.0.1:${port}`;
    },
    /** The mail received for `address` (quoted-printable soft breaks undone), oldest first. */
    to(address: string) {
      return received.filter((mail) => mail.to.includes(address)).map((mail) => mail.raw.replace(/=\r?\n/g, '').replace(/=3D/g, '='));
    },
    setRefusal(decide: typeof refuse) {
      refuse = decide;
    },
    start,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
