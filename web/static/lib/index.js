// @chatcluster/client: a client of the chat cluster's protocol v1 for
// browsers, Node 20+ and React Native.
export * from './protocol.js';
export { compareIds, maxId, isId, mergeMessages } from './ids.js';
export { Backoff, drainDelay } from './backoff.js';
export { Connection, RequestError, } from './connection.js';
export { Api, ApiError } from './api.js';
export * from './state.js';
export { applyChangeTo, isNewChange, quoteOf, reactionsAfter, validEmoji, newerCopy, MAX_PENDING_CHANGES, } from './changes.js';
export { Session, DEFAULT_ACCESS_TTL_MS, MAX_REFRESH_AHEAD_MS } from './session.js';
export { ChatClient } from './client.js';
