// A loopback TCP listener that must never be contacted: it records every connection it receives.
import net from 'node:net';

export interface SilentListener {
  port: number;
  origin: string;
  /** Connections received so far (each with the first bytes it sent). */
  hits: Array<{ remote: string; firstBytes: string }>;
  close(): Promise<void>;
}

export async function startSilentListener(host = '127.0.0.1'): Promise<SilentListener> {
  const hits: SilentListener['hits'] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    const hit = { remote: `${socket.remoteAddress}:${socket.remotePort}`, firstBytes: '' };
    hits.push(hit);
    socket.on('data', (d) => {
      if (hit.firstBytes.length < 512) hit.firstBytes += d.toString('latin1').slice(0, 512);
    });
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    socket.end('HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n');
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    origin: `http://${host}:${port}`,
    hits,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
