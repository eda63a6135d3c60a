// The WebSocket connection: reconnect with backoff and jitter, 4001/4002,
// request/answer by `id`, application pings. It is the client library's
// (clients/ts, built into ./lib), so the browser and every other client
// share one implementation.

export { Connection, RequestError, CLOSE_DRAINING, CLOSE_TOKEN_EXPIRED } from './lib/connection.js';
