// The client protocol v1 (docs/PROTOCOL.md) as types and tables: the one
// description from which the WebSocket connection (connection.ts) and the
// HTTP calls (api.ts) are typed. Add a frame type or an endpoint here and
// both sides see it; nothing else in the library spells a frame's fields.
/** The client frames the server answers, and the type of the answer (besides `error`). */
export const ANSWERS = {
    send: 'ack',
    history: 'history',
    ping: 'pong',
    edit: 'ack',
    delete: 'ack',
    react: 'ack',
    changes: 'changes',
};
export const CLIENT_FRAME_TYPES = ['send', 'history', 'read', 'typing', 'ping', 'edit', 'delete', 'react', 'changes'];
export const SERVER_FRAME_TYPES = [
    'hello',
    'ack',
    'message',
    'history',
    'read',
    'typing',
    'presence',
    'conversation',
    'error',
    'pong',
    'change',
    'changes',
];
/** Close codes with a meaning for clients (docs/PROTOCOL.md, "Close codes"). */
export const CLOSE_NORMAL = 1000;
export const CLOSE_PING_TIMEOUT = 1001;
export const CLOSE_SERVER_ERROR = 1011;
export const CLOSE_TOO_SLOW = 1013;
/** The token expired or its session ended: refresh the token (POST /token); if that is refused, log in again. */
export const CLOSE_TOKEN_EXPIRED = 4001;
/** The server is draining: reconnect at once, elsewhere. */
export const CLOSE_DRAINING = 4002;
/** The client broke a protocol rule: reconnecting repeats the mistake. */
export const CLOSE_PROTOCOL_ERRORS = [1002, 1003, 1007, 1009];
export const ENDPOINTS = {
    signup: { method: 'POST', path: '/signup', auth: false },
    login: { method: 'POST', path: '/login', auth: false },
    token: { method: 'POST', path: '/token', auth: false },
    logout: { method: 'POST', path: '/logout', auth: true },
    sessions: { method: 'GET', path: '/sessions', auth: true },
    endSession: { method: 'DELETE', path: '/sessions/{id}', auth: true },
    password: { method: 'POST', path: '/password', auth: true },
    wsTicket: { method: 'POST', path: '/ws-ticket', auth: true },
    removeDevices: { method: 'DELETE', path: '/devices', auth: true },
    me: { method: 'GET', path: '/me', auth: true },
    users: { method: 'GET', path: '/users', auth: true },
    conversations: { method: 'GET', path: '/conversations', auth: true },
    direct: { method: 'POST', path: '/conversations/direct', auth: true },
    createGroup: { method: 'POST', path: '/conversations', auth: true },
    addMember: { method: 'POST', path: '/conversations/{id}/members', auth: true },
    messagesBefore: { method: 'GET', path: '/conversations/{id}/messages', auth: true },
    messagesAfter: { method: 'GET', path: '/conversations/{id}/messages', auth: true },
};
export const API_PREFIX = '/api/v1';
// ---------------------------------------------------------------- limits
export const MAX_BODY_CODE_POINTS = 4096;
export const MAX_CLIENT_ID_LENGTH = 64;
export const MAX_HISTORY_LIMIT = 200;
/** A reply's quote of the original is cut to this many code points. */
export const QUOTE_CODE_POINTS = 200;
/** Emojis one message may carry at most. */
export const MAX_REACTION_EMOJIS = 20;
