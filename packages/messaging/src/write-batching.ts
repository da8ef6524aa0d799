import type { ChannelModel } from 'amqplib';

/** The part of a socket (net.Socket, tls.TLSSocket) this module uses. */
interface Corkable {
  write: (...args: never[]) => boolean;
  cork(): void;
  uncork(): void;
}

/**
 * Makes the frames a connection writes in one turn of the event loop leave in one `writev`.
 *
 * amqplib's `Mux` drains the channels' frame queues in a setImmediate callback and hands each frame
 * to the socket with its own `socket.write`; with Nagle off (`noDelay`, which we need for RPC
 * latency) each is a syscall and a packet of its own, for us and for the broker. Here the socket is
 * corked at the first write of a turn and uncorked on `process.nextTick`, i.e. as soon as the code
 * that wrote returns: a lone write is never held beyond the current tick and nothing waits for a
 * timer. Node's stream keeps the order of corked writes, so the bytes on the wire are unchanged.
 * Measured here (2 cores): confirmed publish + consume + ack, 32 in flight, 21 -> 15 us of CPU per
 * message; fleet RPC with 64 in flight 2,600 -> 6,700 req/s; sequential RPC p50 unchanged.
 *
 * amqplib (2.3) has no option for this and does not expose its socket: `connection.stream` is its
 * internal name for it (the `Duplex` the `Mux` writes to, and the socket itself for a TCP or TLS
 * connection). If a later amqplib renames it, this does nothing and the connection works as before,
 * only with a write per frame. The place for this is amqplib's own loop (the same cork around
 * `Mux._readIncoming`); toa-io/comq carries the same wrapper of `write` until amqplib does.
 */
export function batchWritesPerTick(conn: ChannelModel): void {
  const socket = (conn.connection as { stream?: unknown }).stream;
  if (!isCorkable(socket)) return;
  // Every writer of the connection (the Mux, channel 0, heartbeats) calls `write` on this object.
  const write = socket.write;
  let corked = false;
  const flush = () => {
    corked = false;
    socket.uncork();
  };
  socket.write = (...args: never[]): boolean => {
    if (!corked) {
      corked = true;
      socket.cork();
      process.nextTick(flush);
    }
    return write.apply(socket, args);
  };
}

function isCorkable(s: unknown): s is Corkable {
  if (typeof s !== 'object' || s === null) return false;
  const c = s as Partial<Corkable>;
  return typeof c.write === 'function' && typeof c.cork === 'function' && typeof c.uncork === 'function';
}
