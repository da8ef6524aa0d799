// Starts or stops a local 3-node RabbitMQ cluster for the cluster suite and for trying failover by
// hand: nodes wfcluster1..3@localhost, AMQP on 127.0.0.1:5711-5713, distribution ports
// 25711-25713, data in /tmp/rq-wfcluster<n>, separate from the machine's node (5672) and from the
// scratch nodes of the alarm tests (5701-5703). The fleet's broker definitions are imported, so the
// fleet's users exist with their local passwords (the role's name). About 25 s to start.
//   pnpm cluster start    # prints the AMQP_URL list of each fleet user
//   pnpm cluster stop
import { fileURLToPath } from 'node:url';
import { localCluster, startLocalCluster } from '@wallet-fleet/testing';

const definitions = fileURLToPath(new URL('../../infra/rabbitmq/definitions.json', import.meta.url));
const command = process.argv[2];
if (command === 'start') {
  const t0 = Date.now();
  const cluster = await startLocalCluster(definitions);
  console.log(`cluster of ${cluster.nodes.map((n) => n.node).join(', ')} up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  for (const user of ['audit', 'wallet', 'backend', 'ops']) console.log(`${user}: AMQP_URL=${cluster.urls(user)}`);
} else if (command === 'stop') {
  await localCluster().stop();
  console.log('cluster stopped');
} else {
  console.error('usage: pnpm cluster start|stop');
  process.exitCode = 2;
}
