export { runWithContext, currentContext, childTraceparent, type WorkContext } from './context.js';
export { createLogger, safeUrl, redactPaths, type Logger } from './logger.js';
