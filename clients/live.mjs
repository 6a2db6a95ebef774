// Live updates as a frontend gets them: the graphql-ws client subscribes to ticketOpened and
// deliveryUpdated on one API process (LIVE_WS_URL), while tickets are opened through another
// (LIVE_HTTP_URL; the same process on SQLite). Checks that both events arrive for the
// account, and that a widget key, a wrong key and another account's events are kept out.
//
//   LIVE_WS_URL=ws://127.0.0.1:8080/graphql/ws LIVE_HTTP_URL=http://127.0.0.1:8081/graphql \
//   LIVE_KEY=tk_admin_... LIVE_WIDGET_KEY=tk_widget_... LIVE_OTHER_KEY=tk_admin_... node live.mjs

import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const { LIVE_WS_URL, LIVE_HTTP_URL, LIVE_KEY, LIVE_WIDGET_KEY, LIVE_OTHER_KEY } = process.env;
const TIMEOUT_MS = 30_000;

function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

async function gql(key, query, variables = {}) {
  const response = await fetch(LIVE_HTTP_URL, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors) fail(`${query}: ${JSON.stringify(body.errors)}`);
  return body.data;
}

function client(key) {
  return createClient({
    url: LIVE_WS_URL,
    webSocketImpl: WebSocket,
    connectionParams: { Authorization: `Bearer ${key}` },
    retryAttempts: 0,
    lazy: false,
  });
}

// Resolves with the first `count` payloads of a subscription, or rejects on error/timeout.
function collect(c, query, count) {
  const seen = [];
  let unsubscribe;
  const done = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out; got ${JSON.stringify(seen)}`)), TIMEOUT_MS);
    unsubscribe = c.subscribe({ query }, {
      next: (value) => {
        if (value.errors) {
          clearTimeout(timer);
          reject(new Error(JSON.stringify(value.errors)));
          return;
        }
        seen.push(value.data);
        if (seen.length >= count) {
          clearTimeout(timer);
          resolve(seen);
        }
      },
      error: (e) => {
        clearTimeout(timer);
        reject(e instanceof Error ? e : new Error(e?.reason ?? JSON.stringify(e)));
      },
      complete: () => {},
    });
  });
  return { done, stop: () => unsubscribe() };
}

// A connection the server must refuse: resolves with the close reason.
function refused(key) {
  return new Promise((resolve) => {
    const c = createClient({
      url: LIVE_WS_URL,
      webSocketImpl: WebSocket,
      connectionParams: { Authorization: `Bearer ${key}` },
      retryAttempts: 0,
      lazy: false,
      // The refusal is the expected outcome here, not an error to print.
      onNonLazyError: () => {},
      on: { closed: (event) => resolve(`${event.code} ${event.reason}`) },
    });
    c.subscribe({ query: 'subscription { ticketOpened { id } }' }, { next: () => {}, error: () => {}, complete: () => {} });
  });
}

const admin = client(LIVE_KEY);
const tickets = collect(admin, 'subscription { ticketOpened { id number topic flowName } }', 1);
const deliveries = collect(admin, 'subscription { deliveryUpdated { recipient status attempts } }', 1);
const other = collect(client(LIVE_OTHER_KEY), 'subscription { ticketOpened { id } }', 1);

for (const [name, key] of [['widget key', LIVE_WIDGET_KEY], ['unknown key', 'tk_admin_nope']]) {
  const reason = await refused(key);
  // async-graphql closes a refused connection_init with 1002 and the reason.
  if (!['1002', '4400', '4401', '4403'].includes(reason.split(' ')[0])) {
    fail(`the ${name} was not refused: ${reason}`);
  }
  console.log(`ok: the ${name} is refused (${reason})`);
}

// Give the subscriptions a moment to be registered before the writes happen.
await new Promise((r) => setTimeout(r, 500));

const flow = await gql(LIVE_KEY, 'mutation { createFlow(input: {name: "Canlı"}) { id } }');
const step = await gql(LIVE_KEY,
  'mutation($f: ID!) { addStep(flowId: $f, step: {ticket: {topic: "live_topic", confirmationMessage: "Talep alındı"}}) { id } }',
  { f: flow.createFlow.id });
await gql(LIVE_KEY, 'mutation { createRoutingRule(input: {tag: "live_topic", emails: ["agent@example.com"]}) { id } }');
const opened = await gql(LIVE_WIDGET_KEY,
  'mutation($s: ID!) { openTicket(input: {stepId: $s, message: "canlı"}) { ticket { id number } } }',
  { s: step.addStep.id });

const [ticket] = await tickets.done.catch((e) => fail(`ticketOpened: ${e.message}`));
if (ticket.ticketOpened.id !== opened.openTicket.ticket.id || ticket.ticketOpened.topic !== 'live_topic') {
  fail(`ticketOpened sent ${JSON.stringify(ticket)}, expected ticket ${opened.openTicket.ticket.id}`);
}
console.log(`ok: ticketOpened #${ticket.ticketOpened.number} arrived over ${LIVE_WS_URL}`);

const [delivery] = await deliveries.done.catch((e) => fail(`deliveryUpdated: ${e.message}`));
if (delivery.deliveryUpdated.recipient !== 'agent@example.com' || delivery.deliveryUpdated.status !== 'SENT') {
  fail(`deliveryUpdated sent ${JSON.stringify(delivery)}`);
}
console.log(`ok: deliveryUpdated ${delivery.deliveryUpdated.recipient} ${delivery.deliveryUpdated.status}`);

const leaked = await Promise.race([
  other.done.then((v) => v, () => null),
  new Promise((r) => setTimeout(() => r(null), 1000)),
]);
if (leaked) fail(`another account saw this account's ticket: ${JSON.stringify(leaked)}`);
console.log('ok: another account saw nothing');

console.log('PASSED');
process.exit(0);
