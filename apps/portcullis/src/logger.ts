import { type DestinationStream, type Logger, pino } from 'pino';

/**
 * Logs never go to stdout: in stdio mode stdout is the protocol channel, and keeping one rule for
 * both modes means no configuration can break it. A configured file takes them instead of stderr.
 */
export function createLogger(level: string, file: string | undefined): Logger {
  const destination: DestinationStream = file
    ? pino.destination({ dest: file, mkdir: true, sync: false })
    : pino.destination(2);
  return pino(
    {
      level,
      base: { pid: process.pid },
      // Upstream headers and env may carry credentials; they are never logged.
      redact: {
        paths: ['*.headers', '*.env', 'headers', 'env', '*.authorization', 'authorization'],
        censor: '[redacted]',
      },
    },
    destination,
  );
}
