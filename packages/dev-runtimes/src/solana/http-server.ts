import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { RpcError } from './errors.js';
import type { RpcMethod } from './rpc-methods.js';

const MAX_BODY = 2 * 1024 * 1024;

export interface JsonRpcServer {
  readonly port: number;
  /** Closes the listener and every open connection; safe to call twice. */
  close(): Promise<void>;
}

/**
 * Serves `methods` as JSON-RPC 2.0 over HTTP POST (single and batch requests) on host:port.
 * Rejects with the listen error (e.g. EADDRINUSE).
 */
export async function serveJsonRpc(methods: Record<string, RpcMethod>, options: { host: string; port: number }): Promise<JsonRpcServer> {
  const server: Server = createServer((req, res) => {
    void handle(req).then(
      (body) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      },
      () => {
        res.writeHead(400);
        res.end();
      },
    );
  });

  async function handle(req: IncomingMessage): Promise<unknown> {
    if (req.method !== 'POST') return { jsonrpc: '2.0', id: null, error: { code: -32600, message: 'POST only' } };
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req) {
      size += (c as Buffer).length;
      if (size > MAX_BODY) throw new Error('body too large');
      chunks.push(c as Buffer);
    }
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      return { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } };
    }
    return Array.isArray(body) ? body.map(call) : call(body);
  }

  function call(request: any): unknown {
    const id = request?.id ?? null;
    const method = typeof request?.method === 'string' ? methods[request.method] : undefined;
    if (!method) return { jsonrpc: '2.0', id, error: { code: -32601, message: 'Method not found' } };
    try {
      return { jsonrpc: '2.0', id, result: method(Array.isArray(request.params) ? request.params : []) };
    } catch (e) {
      if (e instanceof RpcError) return { jsonrpc: '2.0', id, error: { code: e.code, message: e.message, ...(e.data === undefined ? {} : { data: e.data }) } };
      return { jsonrpc: '2.0', id, error: { code: -32602, message: `Invalid params: ${e instanceof Error ? e.message : String(e)}` } };
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  let closing: Promise<void> | undefined;
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      })),
  };
}
