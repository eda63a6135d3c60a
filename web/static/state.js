// The client's logic, free of the DOM and of the network: ID order and
// de-duplication, the outbox keyed by client_id, read marks, typing,
// presence, the catch-up plan and backoff. It is the client library's
// (clients/ts, built into ./lib), so the browser and every other client
// share one implementation.

export { compareIds, maxId, isId, mergeMessages } from './lib/ids.js';
export { Backoff, drainDelay } from './lib/backoff.js';
export {
  ChatState,
  Throttle,
  displayName,
  newClientId,
  validBody,
  TYPING_SHOW_MS,
  TYPING_SEND_EVERY_MS,
  OUTBOX_STALE_MS,
  RETRYABLE_SEND_ERRORS,
  AUTO_SEND_TRIES,
  MAX_CATCHUP_PAGES,
} from './lib/state.js';
export { quoteOf, validEmoji } from './lib/changes.js';
