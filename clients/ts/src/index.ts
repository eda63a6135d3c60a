// @chatcluster/client: a client of the chat cluster's protocol v1 for
// browsers, Node 20+ and React Native.

export * from './protocol.js';
export { compareIds, maxId, isId, mergeMessages } from './ids.js';
export { Backoff, drainDelay, type BackoffOptions } from './backoff.js';
export {
  Connection,
  RequestError,
  type ConnectionOptions,
  type ConnectionStatus,
  type StatusInfo,
  type WebSocketLike,
  type WebSocketClass,
  type SetTimeout,
  type ClearTimeout,
  type TimerHandle,
} from './connection.js';
export { Api, ApiError, type ApiOptions, type FetchLike, type FetchResponseLike } from './api.js';
export * from './state.js';
export {
  applyChangeTo,
  isNewChange,
  quoteOf,
  reactionsAfter,
  validEmoji,
  newerCopy,
  MAX_PENDING_CHANGES,
} from './changes.js';
export { Session, DEFAULT_ACCESS_TTL_MS, MAX_REFRESH_AHEAD_MS, type SessionOptions, type SavedTokens } from './session.js';
export { ChatClient, type ChatClientOptions, type CatchUpOutcome } from './client.js';
