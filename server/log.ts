// Structured logs for operators: JSON lines on stderr (stdout carries the
// presenter's banner and QR code). Keys, codes and Authorization headers are
// never logged by the code; the redaction is a second line of defence.
//
// The level starts at the default and the entry point sets LOG_LEVEL's once
// the configuration is read (config.ts validates it): built at import from
// the raw variable, an unknown level threw pino's stack trace before any
// usage error could be reported.
import { pino } from 'pino';
import { DEFAULTS } from './config';

export const logger = pino(
  {
    name: 'clicker',
    level: DEFAULTS.logLevel,
    redact: {
      paths: ['*.authorization', '*.Authorization', '*.deckKey', '*.controllerKey', '*.pairCode', '*.code', 'headers.authorization'],
      censor: '[redacted]',
    },
  },
  pino.destination(2),
);
