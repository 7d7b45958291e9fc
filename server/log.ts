// Structured logs for operators: JSON lines on stderr (stdout carries the
// presenter's banner and QR code). Keys, codes and Authorization headers are
// never logged by the code; the redaction is a second line of defence.
import { pino } from 'pino';

export const logger = pino(
  {
    name: 'clicker',
    level: process.env.LOG_LEVEL ?? 'info',
    redact: {
      paths: ['*.authorization', '*.Authorization', '*.deckKey', '*.controllerKey', '*.pairCode', '*.code', 'headers.authorization'],
      censor: '[redacted]',
    },
  },
  pino.destination(2),
);
