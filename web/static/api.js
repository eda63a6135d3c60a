// The HTTP half of the protocol (/api/v1) is the client library's
// (clients/ts, built into ./lib); what stays here is how its errors read to
// people.

export { Api, ApiError } from './lib/api.js';

/**
 * A page of a conversation's members (docs/PROTOCOL.md, extension): members
 * by ascending ID after `after`, each with `online`; `next_after` (null at
 * the end), `member_count`, and `online_count` on the first page.
 */
export function listMembers(api, convId, { after = null, limit = 100 } = {}) {
  let path = `/conversations/${encodeURIComponent(convId)}/members?limit=${limit}`;
  if (after) path += `&after=${encodeURIComponent(after)}`;
  return api.call('GET', path);
}

/** Adds up to 1,000 users to a group in one call. */
export function addMembers(api, convId, usernames) {
  return api.call('POST', `/conversations/${encodeURIComponent(convId)}/members`, { usernames });
}

/** A user-facing sentence for an API error. */
export function describeError(e) {
  switch (e && e.code) {
    case 'username_taken':
      return 'That username is taken.';
    case 'unauthorized':
      return 'Wrong username or password.';
    case 'not_found':
      return 'Not found.';
    case 'forbidden':
      return 'Not allowed: someone you named does not accept this from you.';
    case 'rate_limited':
      return rateLimitedText(e.message);
    case 'unavailable':
      return 'The server is busy. Try again in a moment.';
    case 'network':
      return 'Cannot reach the server. Check your connection.';
    case 'invalid_request':
      return (e.message && e.message !== e.code ? e.message : 'That request was not valid.');
    default:
      return (e && e.message) || 'Something went wrong.';
  }
}

/**
 * A 429 (docs/PROTOCOL.md, Limits) says in its message how long to wait
 * ("...; try again in 840 s", as its Retry-After header does): said here in
 * minutes or seconds.
 */
function rateLimitedText(message) {
  const m = /try again in (\d+) s/.exec(message || '');
  if (!m) return 'Too many attempts. Wait a moment and try again.';
  const secs = Number(m[1]);
  let wait;
  if (secs < 60) wait = secs === 1 ? '1 second' : `${secs} seconds`;
  else {
    const mins = Math.ceil(secs / 60);
    wait = mins === 1 ? '1 minute' : `${mins} minutes`;
  }
  return `Too many attempts. Try again in ${wait}.`;
}
