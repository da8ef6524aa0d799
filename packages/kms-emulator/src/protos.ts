import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/**
 * The real Cloud KMS service definition, loaded from the protos that ship inside
 * `@google-cloud/kms` (imports such as `google/api/*` ship inside google-gax). Serving the very
 * protos the client was generated from keeps the emulator's wire format identical to the client's.
 */
export function loadKmsService(): grpc.ServiceDefinition {
  const require = createRequire(import.meta.url);
  const kmsMain = require.resolve('@google-cloud/kms'); // …/@google-cloud/kms/build/src/index.js
  const kmsProtos = join(dirname(kmsMain), '..', 'protos');
  // google-gax's `exports` field blocks resolving its package.json: resolve its main file from the
  // kms package's own folder (pnpm only links it there) and walk up.
  const gaxMain = createRequire(kmsMain).resolve('google-gax'); // …/google-gax/build/src/index.js
  const gaxProtos = join(dirname(gaxMain), '..', 'protos');
  const definition = protoLoader.loadSync('google/cloud/kms/v1/service.proto', {
    includeDirs: [kmsProtos, gaxProtos],
    keepCase: false,
    longs: String,
    enums: String,
    bytes: Buffer,
    // Absent fields stay absent: the server must tell "no crc32c sent" from "crc32c 0".
    defaults: false,
    oneofs: true,
  });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    google: { cloud: { kms: { v1: { KeyManagementService: grpc.ServiceClientConstructor } } } };
  };
  return loaded.google.cloud.kms.v1.KeyManagementService.service;
}
