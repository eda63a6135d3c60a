// The client protocol v1 (docs/PROTOCOL.md) as types and tables: the one
// description from which the WebSocket connection (connection.ts) and the
// HTTP calls (api.ts) are typed. Add a frame type or an endpoint here and
// both sides see it; nothing else in the library spells a frame's fields.

/** Every ID is a string: 64-bit numbers do not survive JavaScript. */
export type ID = string;

/** A request's `id` on the WebSocket: any JSON value, echoed back as it was. */
export type RequestId = string | number;

export interface User {
  id: ID;
  username: string;
  display_name: string;
  /** Presence when the object was made (inside conversations the server renders). */
  online?: boolean;
}

export interface Message {
  id: ID;
  conversation: ID;
  sender: ID;
  /** "" once deleted. */
  body: string;
  /** RFC 3339, milliseconds, UTC. */
  sent_at: string;
  client_id: string;
  // Extensions (messages that change): present only when set, so a message
  // that never changed reads as in v1.
  /** The message this one answers. */
  reply_to?: ID;
  /** What the answered message shows now (body cut to 200 code points; "" and deleted once deleted). */
  reply?: Quote;
  /** When the body was last edited. */
  edited_at?: string;
  /** The sender deleted it: body is "" and there are no reactions. */
  deleted?: boolean;
  /** Reactions by emoji, `me` when the reader reacted with it. */
  reactions?: Reaction[];
  /** The ID of the newest change this state includes: apply a change only when its ID is larger. */
  version?: ID;
}

/** One emoji's reactions to a message. */
export interface Reaction {
  emoji: string;
  count: number;
  /** The reader reacted with it. */
  me?: boolean;
}

/** What a reply shows of the message it answers. */
export interface Quote {
  id: ID;
  sender: ID;
  body: string;
  deleted?: boolean;
}

export type ChangeKind = 'edit' | 'delete' | 'react';

/**
 * An edit, deletion or reaction to an earlier message. Its `id` is from the
 * same sequence as the conversation's message IDs, so one cursor per
 * conversation covers both.
 */
export interface Change {
  id: ID;
  conversation: ID;
  kind: ChangeKind;
  message_id: ID;
  /** Who made it. */
  user: ID;
  /** RFC 3339, milliseconds, UTC. */
  at: string;
  client_id?: string;
  /** An edit's new body. */
  body?: string;
  /** A reaction's emoji, and whether it was added (true) or taken back. */
  emoji?: string;
  on?: boolean;
  /** Only in a `changes` answer: the changed message as it is now, for the reader. */
  message?: Message;
}

export type ConversationKind = 'direct' | 'group';

export interface Conversation {
  id: ID;
  kind: ConversationKind;
  title: string;
  /** Absent for a big group that carries `member_count` instead (v1.1). */
  members?: User[];
  member_count?: number;
  last_message: Message | null;
  unread: number;
}

/** Codes of a WebSocket `error` frame. */
export type WsErrorCode = 'invalid_message' | 'not_found' | 'rate_limited' | 'bad_request' | 'unavailable' | 'internal' | 'forbidden';

/** Codes of an HTTP error body. */
export type HttpErrorCode = 'invalid_request' | 'unauthorized' | 'not_found' | 'username_taken' | 'rate_limited' | 'unavailable';

// ---------------------------------------------------------------- WebSocket

/** Frames a client sends, by `type` (without the `type` field itself). */
export interface ClientFrames {
  send: { id?: RequestId; conversation: ID; client_id: string; body: string; reply_to?: ID };
  history: { id?: RequestId; conversation: ID; before?: ID; after?: ID; limit?: number };
  read: { conversation: ID; message_id: ID };
  typing: { conversation: ID };
  ping: { id?: RequestId };
  edit: { id?: RequestId; conversation: ID; message_id: ID; body: string; client_id: string };
  delete: { id?: RequestId; conversation: ID; message_id: ID; client_id?: string };
  react: { id?: RequestId; conversation: ID; message_id: ID; emoji: string; client_id?: string };
  changes: { id?: RequestId; conversation: ID; after?: ID; limit?: number };
}

/** Frames the server sends, by `type` (without the `type` field itself). */
export interface ServerFrames {
  hello: { user: User; conversations: Conversation[] };
  /** A send's ack carries the stored message; an edit's, delete's or react's the stored change. */
  ack: { id: RequestId; message: Message } | { id: RequestId; change: Change };
  message: { message: Message };
  history: { id: RequestId; messages: Message[]; next_before?: ID | null; next_after?: ID | null };
  read: { conversation: ID; user: ID; message_id: ID };
  typing: { conversation: ID; user: ID };
  presence: { user: ID; online: boolean };
  conversation: { conversation: Conversation };
  error: { id?: RequestId; code: WsErrorCode; message: string };
  pong: { id?: RequestId };
  change: { change: Change };
  changes: { id: RequestId; conversation: ID; changes: Change[]; next_after: ID | null };
}

export type ClientFrameType = keyof ClientFrames;
export type ServerFrameType = keyof ServerFrames;

/** A client frame of one type (or, without a parameter, of any type). */
export type ClientFrame<T extends ClientFrameType = ClientFrameType> = T extends ClientFrameType ? { type: T } & ClientFrames[T] : never;

/** A server frame of one type (or, without a parameter, of any type). */
export type ServerFrame<T extends ServerFrameType = ServerFrameType> = T extends ServerFrameType ? { type: T } & ServerFrames[T] : never;

/** The client frames the server answers, and the type of the answer (besides `error`). */
export const ANSWERS = {
  send: 'ack',
  history: 'history',
  ping: 'pong',
  edit: 'ack',
  delete: 'ack',
  react: 'ack',
  changes: 'changes',
} as const satisfies { [K in ClientFrameType]?: ServerFrameType };

export type RequestType = keyof typeof ANSWERS;

/** The ack of a send: the stored message. */
export type MessageAck = { type: 'ack'; id: RequestId; message: Message };
/** The ack of an edit, delete or react: the stored change. */
export type ChangeAck = { type: 'ack'; id: RequestId; change: Change };

/** The answer to each request (besides `error`), down to which kind of ack. */
export interface Answers {
  send: MessageAck;
  history: ServerFrame<'history'>;
  ping: ServerFrame<'pong'>;
  edit: ChangeAck;
  delete: ChangeAck;
  react: ChangeAck;
  changes: ServerFrame<'changes'>;
}
export type AnswerOf<T extends RequestType> = Answers[T];

/** A request frame as the caller writes it: the connection adds the `id`. */
export type RequestFrame<T extends RequestType = RequestType> = T extends RequestType ? { type: T } & Omit<ClientFrames[T], 'id'> : never;

export const CLIENT_FRAME_TYPES: readonly ClientFrameType[] = ['send', 'history', 'read', 'typing', 'ping', 'edit', 'delete', 'react', 'changes'];
export const SERVER_FRAME_TYPES: readonly ServerFrameType[] = [
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
export const CLOSE_PROTOCOL_ERRORS: readonly number[] = [1002, 1003, 1007, 1009];

// ---------------------------------------------------------------- HTTP

export interface AuthAnswer {
  user: User;
  token: string;
  /** v1.1 extensions, when the server gives them. */
  refresh_token?: string;
  expires_in?: number;
}

/** One session (device) of the user, from GET /sessions (extension). */
export interface SessionInfo {
  id: string;
  /** What the device called itself at login (default its User-Agent). */
  device: string;
  /** RFC 3339. */
  created_at: string;
  /** RFC 3339: the last login or refresh. */
  last_seen: string;
  /** The session of the token that asked. */
  current: boolean;
}

/** POST /ws-ticket (extension): a single-use credential for `/ws?ticket=`. */
export interface WsTicketAnswer {
  ticket: string;
  expires_in: number;
}

export interface HistoryBeforeAnswer {
  messages: Message[];
  next_before: ID | null;
}

export interface HistoryAfterAnswer {
  messages: Message[];
  next_after: ID | null;
}

/**
 * The HTTP endpoints under /api/v1. `params` fill `{name}` in the path,
 * `query` becomes the query string, `body` is sent as JSON, `answer` is the
 * JSON of a 2xx answer.
 */
export interface Endpoints {
  signup: { body: { username: string; password: string; display_name?: string; device?: string }; answer: AuthAnswer };
  login: { body: { username: string; password: string; device?: string }; answer: AuthAnswer };
  /** Sessions (extension): trades a refresh token for a new pair; the one presented is retired. */
  token: { body: { refresh_token: string }; answer: AuthAnswer };
  logout: { query: { all?: 'true' }; answer: null };
  sessions: { answer: { sessions: SessionInfo[] } };
  endSession: { params: { id: string }; answer: null };
  password: { body: { current_password: string; new_password: string }; answer: null };
  wsTicket: { answer: WsTicketAnswer };
  /** Push (extension): removes every device registration of the caller; call it when logging out. */
  removeDevices: { answer: { removed: number } };
  me: { answer: User };
  users: { query: { prefix: string }; answer: { users: User[] } };
  conversations: { query: { limit?: number }; answer: { conversations: Conversation[] } };
  direct: { body: { username: string }; answer: Conversation };
  createGroup: { body: { title: string; members: string[] }; answer: Conversation };
  addMember: { params: { id: ID }; body: { username: string }; answer: Conversation };
  messagesBefore: { params: { id: ID }; query: { before?: ID; limit?: number }; answer: HistoryBeforeAnswer };
  messagesAfter: { params: { id: ID }; query: { after: ID; limit?: number }; answer: HistoryAfterAnswer };
}

export type EndpointName = keyof Endpoints;
export type HttpMethod = 'GET' | 'POST' | 'DELETE';

export interface EndpointSpec {
  method: HttpMethod;
  /** Under /api/v1; `{name}` is replaced by the URL-encoded param. */
  path: string;
  /** Whether it needs the bearer token (all but signup, login and token, which are sent without one). */
  auth: boolean;
}

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
} as const satisfies { [K in EndpointName]: EndpointSpec };

/** What a call of endpoint K takes: only the parts that endpoint has. */
export type EndpointArgs<K extends EndpointName> = Pick<Endpoints[K], Extract<keyof Endpoints[K], 'params' | 'query' | 'body'>>;
export type EndpointAnswer<K extends EndpointName> = Endpoints[K]['answer'];

export const API_PREFIX = '/api/v1';

// ---------------------------------------------------------------- limits

export const MAX_BODY_CODE_POINTS = 4096;
export const MAX_CLIENT_ID_LENGTH = 64;
export const MAX_HISTORY_LIMIT = 200;
/** A reply's quote of the original is cut to this many code points. */
export const QUOTE_CODE_POINTS = 200;
/** Emojis one message may carry at most. */
export const MAX_REACTION_EMOJIS = 20;
