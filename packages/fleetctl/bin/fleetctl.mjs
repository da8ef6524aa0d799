#!/usr/bin/env node
// Committed shim, so that pnpm can link the bin before the first build; the CLI itself is
// compiled TypeScript (`pnpm build`). main() closes what it opened; the explicit exit stops an idle
// HTTP keep-alive socket from holding the process open a few seconds longer.
import { main } from '../dist/main.js';

process.exit(await main(process.argv.slice(2)));
