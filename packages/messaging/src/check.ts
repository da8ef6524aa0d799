import type { Check } from '@wallet-fleet/service-kit';
import type { Broker } from './types.js';

/** A readiness check: connected to the broker, publishing not blocked (resource alarm), every registered consumer running. */
export function brokerCheck(broker: Pick<Broker, 'status'>): Check {
  return {
    name: 'rabbitmq',
    check: async () => {
      const s = broker.status();
      if (!s.connected) throw new Error('not connected');
      if (s.blocked) throw new Error(`the broker blocks publishing (${s.blocked})`);
      const stopped = Object.entries(s.consumers)
        .filter(([, running]) => !running)
        .map(([q]) => q);
      if (stopped.length > 0) throw new Error(`consumers not running: ${stopped.join(', ')}`);
      return { consumers: s.consumers };
    },
  };
}
