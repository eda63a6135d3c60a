import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Api, ApiError, describeError } from '../static/api.js';

function fakeFetch(responses) {
  const calls = [];
  const f = async (url, init) => {
    calls.push({ url, ...init, headers: { ...init.headers } });
    const r = responses.shift();
    if (r instanceof Error) throw r;
    return {
      ok: r.status >= 200 && r.status < 300,
      status: r.status,
      text: async () => (r.body === undefined ? '' : JSON.stringify(r.body)),
    };
  };
  return { f, calls };
}

test('sends JSON with the bearer token and parses answers', async () => {
  const { f, calls } = fakeFetch([{ status: 200, body: { conversations: [] } }]);
  const api = new Api({ fetch: f, token: 'T' });
  assert.deepEqual(await api.conversations(), { conversations: [] });
  assert.equal(calls[0].url, '/api/v1/conversations');
  assert.equal(calls[0].method, 'GET');
  assert.equal(calls[0].headers.Authorization, 'Bearer T');
  assert.equal(calls[0].body, undefined);
});

test('paths and bodies follow the protocol', async () => {
  const ok = () => ({ status: 200, body: {} });
  const { f, calls } = fakeFetch(Array.from({ length: 8 }, ok));
  const api = new Api({ fetch: f, token: 'T' });
  await api.signup('billy', 'password1', 'Billy');
  await api.login('billy', 'password1');
  await api.searchUsers('b i');
  await api.direct('anna');
  await api.createGroup('Team', ['anna', 'billy']);
  await api.addMember('123', 'carl');
  await api.messages('123', { before: '99', limit: 50 });
  await api.messages('123', { after: '99' });
  const got = calls.map((c) => [c.method, c.url, c.body && JSON.parse(c.body)]);
  assert.deepEqual(got, [
    ['POST', '/api/v1/signup', { username: 'billy', password: 'password1', display_name: 'Billy' }],
    ['POST', '/api/v1/login', { username: 'billy', password: 'password1' }],
    ['GET', '/api/v1/users?prefix=b%20i', undefined],
    ['POST', '/api/v1/conversations/direct', { username: 'anna' }],
    ['POST', '/api/v1/conversations', { title: 'Team', members: ['anna', 'billy'] }],
    ['POST', '/api/v1/conversations/123/members', { username: 'carl' }],
    ['GET', '/api/v1/conversations/123/messages?before=99&limit=50', undefined],
    ['GET', '/api/v1/conversations/123/messages?after=99', undefined],
  ]);
});

test('errors carry the server’s code; a 401 with a token ends the session', async () => {
  let expired = 0;
  const { f } = fakeFetch([
    { status: 409, body: { error: { code: 'username_taken', message: 'taken' } } },
    { status: 401, body: { error: { code: 'unauthorized', message: 'no' } } },
    { status: 401, body: { error: { code: 'unauthorized', message: 'no' } } },
    { status: 502 },
    new TypeError('failed to fetch'),
  ]);
  const api = new Api({ fetch: f, onUnauthorized: () => expired++ });
  await assert.rejects(api.signup('a', 'b'), (e) => e instanceof ApiError && e.code === 'username_taken' && e.status === 409);
  await assert.rejects(api.login('a', 'b'), (e) => e.code === 'unauthorized');
  assert.equal(expired, 0, 'a failed login is not an expired session');
  api.token = 'T';
  await assert.rejects(api.me(), (e) => e.code === 'unauthorized');
  assert.equal(expired, 1);
  await assert.rejects(api.me(), (e) => e.status === 502);
  await assert.rejects(api.me(), (e) => e.code === 'network');
});

test('describeError speaks to people', () => {
  assert.match(describeError(new ApiError(409, 'username_taken')), /taken/);
  assert.match(describeError(new ApiError(0, 'network')), /reach/);
  assert.match(describeError(new ApiError(400, 'invalid_request', 'password too short')), /password too short/);
  // A 429 says how long to wait, readably (the server's message carries it).
  assert.equal(describeError(new ApiError(429, 'rate_limited', 'too many failed logins; try again in 840 s')), 'Too many attempts. Try again in 14 minutes.');
  assert.equal(describeError(new ApiError(429, 'rate_limited', 'too many signups from this address; try again in 1 s')), 'Too many attempts. Try again in 1 second.');
  assert.equal(describeError(new ApiError(429, 'rate_limited', 'too many failed logins; try again in 61 s')), 'Too many attempts. Try again in 2 minutes.');
  assert.match(describeError(new ApiError(429, 'rate_limited')), /Too many attempts/);
});
