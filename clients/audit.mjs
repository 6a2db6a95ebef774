#!/usr/bin/env node
// GraphQL-over-HTTP conformance audit of a running server, with graphql-http's server audits
// (the checks of the GraphQL over HTTP spec: media types, status codes, GET/POST, bad
// parameters). Every request carries `Authorization: Bearer $AUDIT_KEY` (an admin key).
//
//   AUDIT_URL=http://127.0.0.1:8080/graphql AUDIT_KEY=tk_admin_... node audit.mjs
//
// Prints every audit (requirement, ok/notice/warn/error, the reason), then a summary.
// Exit status: 1 when a MUST audit fails, or more than $AUDIT_MAX_SHOULD_FAILURES
// (default 2) SHOULD audits fail; 2 on bad usage; else 0. MAY audits only inform.

import { serverAudits } from 'graphql-http';

const url = process.env.AUDIT_URL;
const key = process.env.AUDIT_KEY;
const maxShouldFailures = Number(process.env.AUDIT_MAX_SHOULD_FAILURES ?? 2);
const timeoutMs = Number(process.env.AUDIT_TIMEOUT_MS ?? 10000);
if (!url || !key || !Number.isInteger(maxShouldFailures) || !(timeoutMs > 0)) {
  console.error('usage: AUDIT_URL=http://host:port/graphql AUDIT_KEY=<admin key> node audit.mjs');
  console.error('       (optional: AUDIT_MAX_SHOULD_FAILURES=2, AUDIT_TIMEOUT_MS=10000)');
  process.exit(2);
}

/** fetch with the key on every request, and a bound on each request's time. */
async function fetchWithKey(input, init = {}) {
  const headers = new Headers(init.headers);
  headers.set('Authorization', `Bearer ${key}`);
  return fetch(input, { ...init, headers, signal: init.signal ?? AbortSignal.timeout(timeoutMs) });
}

const audits = serverAudits({ url, fetchFn: fetchWithKey });

const level = (name) => name.split(' ', 1)[0]; // MUST, SHOULD or MAY
const results = [];
// One at a time: the order of the output is the order of the audits, and the server is not
// flooded.
for (const audit of audits) {
  let result;
  try {
    result = await audit.fn();
  } catch (e) {
    // graphql-http throws only on fatal errors (e.g. the server cannot be reached).
    result = {
      id: audit.id,
      name: audit.name,
      status: level(audit.name) === 'MUST' ? 'error' : level(audit.name) === 'SHOULD' ? 'warn' : 'notice',
      reason: `fatal: ${e?.cause?.message ?? e?.message ?? e}`,
    };
  }
  results.push(result);
}

const describeResponse = (res) => {
  if (!res || typeof res.status !== 'number') return '';
  const type = res.headers?.get?.('content-type');
  return `HTTP ${res.status}${type ? `, Content-Type: ${type}` : ''}`;
};

console.log(`GraphQL over HTTP audit of ${url} (graphql-http server audits)\n`);
for (const r of results) {
  const req = level(r.name);
  const status = r.status.toUpperCase().padEnd(6);
  console.log(`${status} ${req.padEnd(6)} ${r.id}  ${r.name.slice(req.length + 1)}`);
  if (r.status !== 'ok') {
    console.log(`       reason: ${String(r.reason).replace(/\n/g, '\n               ')}`);
    const seen = describeResponse(r.response);
    if (seen) console.log(`       got:    ${seen}`);
  }
}

const count = (req, status) => results.filter((r) => level(r.name) === req && r.status === status).length;
const total = (req) => results.filter((r) => level(r.name) === req).length;
const mustFailed = count('MUST', 'error');
const shouldFailed = count('SHOULD', 'warn');
const mayFailed = count('MAY', 'notice');
console.log('\nSummary:');
console.log(`  MUST:   ${total('MUST') - mustFailed}/${total('MUST')} ok, ${mustFailed} failed`);
console.log(`  SHOULD: ${total('SHOULD') - shouldFailed}/${total('SHOULD')} ok, ${shouldFailed} failed (allowed: ${maxShouldFailures})`);
console.log(`  MAY:    ${total('MAY') - mayFailed}/${total('MAY')} ok, ${mayFailed} not done (informational)`);

const failedNames = (req, status) =>
  results.filter((r) => level(r.name) === req && r.status === status).map((r) => `${r.id} ${r.name}`);
if (mustFailed > 0 || shouldFailed > maxShouldFailures) {
  console.log('\nFAILED:');
  for (const n of failedNames('MUST', 'error')) console.log(`  ${n}`);
  if (shouldFailed > maxShouldFailures) for (const n of failedNames('SHOULD', 'warn')) console.log(`  ${n}`);
  process.exit(1);
}
console.log('\nPASSED');
