// The widget's conversation logic against a scripted API: no browser, no server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Chat, newId } from '../src/chat.js';

function memoryStorage() {
  const items = new Map();
  return {
    getItem: (k) => (items.has(k) ? items.get(k) : null),
    setItem: (k, v) => items.set(k, String(v)),
    removeItem: (k) => items.delete(k),
  };
}

function recordingView() {
  const seen = [];
  return {
    seen,
    say: (sender, text) => seen.push(['say', sender, text]),
    awaiting: (kind, options) => seen.push(['awaiting', kind, options.map((o) => o.label)]),
    ticket: (number, fresh) => seen.push(['ticket', number, fresh]),
    problem: (text, retry) => seen.push(['problem', text, retry ? 'retry' : null]),
    clear: () => seen.push(['clear']),
  };
}

/** A fake API: `answers` maps an operation's first word to a function of its variables. */
function fakeApi(answers) {
  const calls = [];
  const fetch = async (url, init) => {
    const { query, variables } = JSON.parse(init.body);
    calls.push({ url, auth: init.headers.authorization, query, variables });
    const name = query.match(/\{\s*(\w+)/)[1];
    const answer = answers[name](variables, calls.length);
    if (answer instanceof Error) throw answer;
    return { status: 200, json: async () => answer };
  };
  return { fetch, calls };
}

const turn = (botMessages, awaiting = 'TEXT', extra = {}) => ({
  botMessages, awaiting, options: [], ticket: null, ...extra,
});

test('ids are 32 hex characters and differ', () => {
  const a = newId();
  assert.match(a, /^[0-9a-f]{32}$/);
  assert.notEqual(a, newId());
});

test('a turn lost on the network is sent again with the same clientMessageId', async () => {
  let failNext = true;
  const api = fakeApi({
    startConversation: () => ({ data: { startConversation: { conversation: { id: 'c1' }, ...turn(['Merhaba!', 'E-posta adresiniz?']) } } }),
    sendVisitorMessage: () => {
      if (failNext) { failNext = false; return new TypeError('Failed to fetch'); }
      return { data: { sendVisitorMessage: turn(['Talep alındı', 'Görüşmek üzere'], 'NOTHING', { ticket: { number: 7 } }) } };
    },
  });
  const view = recordingView();
  const storage = memoryStorage();
  const chat = new Chat({ endpoint: 'https://x/graphql', key: 'tk_widget_k', flow: 'f1', fetch: api.fetch, storage, view });
  await chat.begin();
  await chat.send('ayse@example.com');
  assert.deepEqual(view.seen.at(-1), ['problem', 'Not sent: the connection failed.', 'retry']);
  // The unanswered turn is kept for a reload.
  assert.equal(JSON.parse(storage.getItem('ticketing-widget:f1')).pending.text, 'ayse@example.com');
  await chat.turn(chat.state.pending);
  const sends = api.calls.filter((c) => c.query.includes('sendVisitorMessage'));
  assert.equal(sends.length, 2);
  assert.equal(sends[0].variables.m, sends[1].variables.m, 'the retry reuses the clientMessageId');
  assert.ok(api.calls.every((c) => c.auth === 'Bearer tk_widget_k'));
  assert.deepEqual(view.seen.filter((s) => s[0] === 'ticket'), [['ticket', 7, true]]);
  assert.equal(JSON.parse(storage.getItem('ticketing-widget:f1')).pending, null);
});

test('a reload picks up the conversation, and resends a turn left unanswered', async () => {
  const storage = memoryStorage();
  storage.setItem('ticketing-widget:f1', JSON.stringify({ id: 'c1', pending: { kind: 'choice', option: 'o2', label: 'Diğer', id: 'abc', before: 0 } }));
  const api = fakeApi({
    conversation: () => ({ data: { conversation: { status: 'ACTIVE', awaiting: 'CHOICE', options: [{ id: 'o2', label: 'Diğer' }], transcript: [{ sender: 'BOT', text: 'Konu nedir?' }], ticket: null } } }),
    chooseOption: (v) => ({ data: { chooseOption: turn([`chose ${v.o} as ${v.m}`], 'NOTHING') } }),
  });
  const view = recordingView();
  const chat = new Chat({ endpoint: 'e', key: 'k', flow: 'f1', fetch: api.fetch, storage, view });
  await chat.begin();
  assert.deepEqual(view.seen, [
    ['say', 'bot', 'Konu nedir?'],
    ['say', 'visitor', 'Diğer'],
    ['say', 'bot', 'chose o2 as abc'],
    ['awaiting', 'NOTHING', []],
  ]);
  assert.ok(!api.calls.some((c) => c.query.includes('startConversation')));
});

test('a turn the API took before the reload is not sent or shown again', async () => {
  const storage = memoryStorage();
  storage.setItem('ticketing-widget:f1', JSON.stringify({ id: 'c1', pending: { kind: 'text', text: 'yes', id: 'abc', before: 1 } }));
  const api = fakeApi({
    conversation: () => ({ data: { conversation: { status: 'ACTIVE', awaiting: 'TEXT', options: [], ticket: null, transcript: [
      { sender: 'BOT', text: 'Sure?' }, { sender: 'VISITOR', text: 'yes' },
      { sender: 'BOT', text: 'Really?' }, { sender: 'VISITOR', text: 'yes' }, { sender: 'BOT', text: 'Noted.' },
    ] } } }),
  });
  const view = recordingView();
  const chat = new Chat({ endpoint: 'e', key: 'k', flow: 'f1', fetch: api.fetch, storage, view });
  await chat.begin();
  assert.equal(api.calls.length, 1, 'only the conversation was read');
  assert.deepEqual(view.seen.at(-1), ['awaiting', 'TEXT', []]);
  assert.equal(view.seen.filter((s) => s[2] === 'Noted.').length, 1);
  assert.equal(JSON.parse(storage.getItem('ticketing-widget:f1')).pending, null);
});

test('an expired or unknown conversation starts a new one; an API error is shown, not retried', async () => {
  const storage = memoryStorage();
  storage.setItem('ticketing-widget:f1', JSON.stringify({ id: 'old', pending: null }));
  const api = fakeApi({
    conversation: () => ({ data: { conversation: { status: 'EXPIRED', awaiting: 'NOTHING', options: [], transcript: [], ticket: null } } }),
    startConversation: () => ({ data: { startConversation: { conversation: { id: 'new' }, ...turn(['Merhaba!']) } } }),
    sendVisitorMessage: () => ({ errors: [{ message: 'text: must not be empty', extensions: { code: 'BAD_USER_INPUT' } }] }),
  });
  const view = recordingView();
  const chat = new Chat({ endpoint: 'e', key: 'k', flow: 'f1', fetch: api.fetch, storage, view });
  await chat.begin();
  assert.equal(JSON.parse(storage.getItem('ticketing-widget:f1')).id, 'new');
  await chat.send('x');
  assert.deepEqual(view.seen.at(-1), ['problem', 'text: must not be empty', null]);
  assert.equal(JSON.parse(storage.getItem('ticketing-widget:f1')).pending, null);
});
