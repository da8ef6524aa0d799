import { ErrorCode, isFleetError } from '@wallet-fleet/contracts';
import express from 'express';
import type { createRunHandlers } from '../handlers/runs.js';

/**
 * `GET /runs?limit=n` (newest first; 400 for a bad limit) and `POST /runs`, the operator trigger:
 * runs a pass now and answers with its report, 409 when another replica holds the lock, 503 when
 * the database cannot be reached. Served on the admin listener (`ADMIN_HTTP_PORT`), never on the
 * service's public HTTP port.
 */
export function createRunsRouter(handlers: ReturnType<typeof createRunHandlers>): express.Router {
  const routes = express.Router();
  routes.get('/runs', async (req, res) => {
    const limit = typeof req.query.limit === 'string' ? Number(req.query.limit) : 20;
    try {
      res.json({ runs: await handlers.listRuns(limit) });
    } catch (e) {
      if (isFleetError(e, ErrorCode.VALIDATION_FAILED)) {
        res.status(400).json({ error: { code: e.code, message: e.message, fields: e.details?.fields } });
        return;
      }
      res.status(503).json({ error: { code: 'UNAVAILABLE', message: e instanceof Error ? e.message : 'unavailable' } });
    }
  });
  routes.post('/runs', async (_req, res) => {
    try {
      const r = await handlers.runPass('manual');
      res.status(r.outcome === 'skipped_locked' ? 409 : 200).json(r);
    } catch (e) {
      res.status(503).json({ error: { code: 'UNAVAILABLE', message: e instanceof Error ? e.message : 'unavailable' } });
    }
  });
  return routes;
}
