// A typed client for the ticketing API without a GraphQL client library: the generated
// TypedDocumentNodes carry each operation's result and variables types, and `request`
// passes them through, so `tsc` checks every variable and every field read below against
// schema.graphql. Run `npm run codegen` first (src/generated/ is not committed).

import { print } from 'graphql';
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import {
  AddStepDocument,
  AddTicketStepDocument,
  ChooseOptionDocument,
  ConversationDocument,
  CreateAgentDocument,
  CreateFlowDocument,
  CreateRoutingRuleDocument,
  DeliveriesDocument,
  OpenTicketDocument,
  PublishFlowDocument,
  QueueStatsDocument,
  SendVisitorMessageDocument,
  StartConversationDocument,
  TicketDocument,
  TicketsDocument,
  TopicTagsDocument,
  UpdateStepDocument,
  ValidateFlowDocument,
  type TicketsQuery,
} from './generated/graphql';
import type * as Types from './generated/schema';

/** Where to send requests, and with which key (`tk_admin_...` or `tk_widget_...`). */
export interface Endpoint {
  url: string; // e.g. http://127.0.0.1:8080/graphql
  key: string;
}

/** One entry of a GraphQL response's `errors`; `extensions.code` is stable (see the README). */
export interface GraphQLErrorEntry {
  message: string;
  path?: ReadonlyArray<string | number>;
  extensions?: { code?: string; field?: string; retryAfterSeconds?: number; [key: string]: unknown };
}

export class GraphQLRequestError extends Error {
  constructor(
    readonly status: number,
    readonly errors: readonly GraphQLErrorEntry[],
  ) {
    super(errors.map((e) => `${e.extensions?.code ?? 'ERROR'}: ${e.message}`).join('; ') || `HTTP ${status}`);
    this.name = 'GraphQLRequestError';
  }

  /** The first error's code, e.g. `BAD_USER_INPUT`, `NOT_FOUND`, `RATE_LIMITED`. */
  get code(): string | undefined {
    return this.errors[0]?.extensions?.code;
  }
}

/** Operations without variables take none; every other one takes exactly its variables
 * (inferred from the document alone: `NoInfer` keeps the argument from widening them). */
type VariablesArg<TVariables> = TVariables extends Record<string, never>
  ? [variables?: TVariables]
  : [variables: TVariables];

/** Sends one operation (POST, JSON) and returns its `data`; throws on any error. */
export async function request<TData, TVariables extends Record<string, unknown>>(
  endpoint: Endpoint,
  document: TypedDocumentNode<TData, TVariables>,
  ...[variables]: VariablesArg<NoInfer<TVariables>>
): Promise<TData> {
  const response = await fetch(endpoint.url, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      Accept: 'application/graphql-response+json, application/json',
      Authorization: `Bearer ${endpoint.key}`,
    },
    body: JSON.stringify({ query: print(document), variables: variables ?? {} }),
  });
  let body: { data?: TData | null; errors?: GraphQLErrorEntry[] };
  try {
    body = (await response.json()) as typeof body;
  } catch {
    throw new GraphQLRequestError(response.status, [{ message: `HTTP ${response.status}, not a GraphQL response` }]);
  }
  if (body.errors?.length || body.data == null) {
    throw new GraphQLRequestError(response.status, body.errors ?? []);
  }
  return body.data;
}

/** What the README's tour does, typed end to end. Returns the opened ticket's number. */
export async function tour(admin: Endpoint, widget: Endpoint): Promise<number> {
  // Design: a flow with a ticket step.
  const { createFlow } = await request(admin, CreateFlowDocument, { name: 'Destek' });
  const { addStep } = await request(admin, AddTicketStepDocument, {
    flowId: createFlow.id,
    topic: 'TICKET_TOPIC_FOO_BAR',
    confirmationMessage: 'Talep alındı',
    forwardEmails: ['support@example.com'],
  });
  // addStep answers the Step interface: `__typename` narrows it to the ticket step.
  if (addStep.__typename !== 'TicketStep') throw new Error(`expected a ticket step, got ${addStep.__typename}`);
  const topic: string = addStep.topic;

  const { topicTags } = await request(admin, TopicTagsDocument);
  for (const t of topicTags) console.log(t.tag, t.steps.map((s) => s.flow.name));

  // Routing.
  const { createAgent } = await request(admin, CreateAgentDocument, { name: 'Ayşe', email: 'ayse@example.com' });
  const { createRoutingRule } = await request(admin, CreateRoutingRuleDocument, {
    tag: topic,
    agentIds: [createAgent.id],
  });
  const known: boolean = createRoutingRule.tagKnown;
  const mailed: string[] = createRoutingRule.recipients;
  console.log('rule mails', mailed.join(', '), 'has recipients:', createRoutingRule.hasRecipients);
  await request(admin, CreateRoutingRuleDocument, { tag: '*', emails: ['boss@example.com'] });
  console.log('rule', createRoutingRule.id, 'tag known:', known);

  // What the chat widget sends (widget key).
  const { openTicket } = await request(widget, OpenTicketDocument, {
    stepId: addStep.id,
    message: 'Siparişim gelmedi',
    visitor: { name: 'Ali', email: 'ali@example.net' },
  });
  const number: number = openTicket.ticket.number;
  console.log(openTicket.confirmationMessage, `#${number}`);

  // Its deliveries (empty until the worker has routed it).
  const { ticket } = await request(admin, TicketDocument, { id: openTicket.ticket.id });
  for (const d of ticket?.deliveries ?? []) {
    const status: Types.DeliveryStatus = d.status;
    const why = d.sources.map((s) => (s.kind === 'FORWARD' ? 'forward' : `rule ${s.tag ?? ''}`));
    console.log(d.recipient, status, d.attempts, d.lastError ?? '', why.join(', '));
  }

  // Paging: newest first, `after` = the previous page's endCursor.
  const all: Array<TicketsQuery['tickets']['edges'][number]['node']> = [];
  let after: string | null = null;
  for (;;) {
    const page: TicketsQuery = await request(admin, TicketsDocument, { first: 50, after });
    all.push(...page.tickets.edges.map((e) => e.node));
    if (!page.tickets.pageInfo.hasNextPage) break;
    after = page.tickets.pageInfo.endCursor;
  }
  console.log(all.length, 'tickets');

  const { queueStats } = await request(admin, QueueStatsDocument);
  console.log('pending', queueStats.deliveries.pending, 'oldest', queueStats.oldestPendingAgeSeconds ?? '-');
  // An admin key sees its own account's line only.
  console.log('waiting for routing', queueStats.backlog.ticketsWaiting);
  const { deliveries } = await request(admin, DeliveriesDocument, { status: 'FAILED', first: 20 });
  for (const { node } of deliveries.edges) console.log(node.recipient, node.attempts, node.lastError);

  return number;
}

/** The README's conversation: design and publish a flow, then talk to it as a visitor. */
export async function conversation(admin: Endpoint, widget: Endpoint): Promise<number | null> {
  const { createFlow: flow } = await request(admin, CreateFlowDocument, { name: 'Destek' });
  const add = async (step: Types.StepInput) => (await request(admin, AddStepDocument, { flowId: flow.id, step })).addStep;
  await add({ message: { text: 'Merhaba!' } });
  const menu = await add({ choice: { text: 'Konu nedir?', options: [{ label: 'Sipariş' }, { label: 'Diğer' }] } });
  const email = await add({ question: { text: 'E-posta adresiniz?', field: 'email' } });
  await add({ question: { text: 'Sipariş numaranız?', field: 'order_no' } });
  await add({ ticket: { topic: 'offline_message', confirmationMessage: 'Talep alındı' } });
  await add({ end: { text: 'Görüşmek üzere' } });
  const other = await add({ end: { text: 'Bu konuda yardımcı olamıyoruz.' } });
  await request(admin, UpdateStepDocument, {
    id: menu.id,
    step: {
      choice: {
        text: 'Konu nedir?',
        options: [
          { label: 'Sipariş', next: email.id },
          { label: 'Diğer', next: other.id },
        ],
      },
    },
  });
  const { validateFlow } = await request(admin, ValidateFlowDocument, { id: flow.id });
  if (validateFlow.length > 0) throw new Error(validateFlow.map((p) => `${p.code}: ${p.message}`).join('\n'));
  const { publishFlow } = await request(admin, PublishFlowDocument, { id: flow.id });
  console.log('published version', publishFlow.number);

  const start = await request(widget, StartConversationDocument, { flowId: flow.id });
  console.log(start.startConversation.botMessages);
  const order = start.startConversation.options.find((o) => o.label === 'Sipariş');
  if (start.startConversation.awaiting !== 'CHOICE' || !order) throw new Error('expected the menu');
  const conversationId = start.startConversation.conversation.id;

  await request(widget, ChooseOptionDocument, { conversationId, optionId: order.id, clientMessageId: 'm1' });
  await request(widget, SendVisitorMessageDocument, { conversationId, text: 'ayse@example.com', clientMessageId: 'm2' });
  const last = await request(widget, SendVisitorMessageDocument, { conversationId, text: 'A-17', clientMessageId: 'm3' });
  const turn = last.sendVisitorMessage;
  console.log(turn.botMessages, turn.awaiting, turn.conversation.status, turn.ticket?.number);

  const { conversation: c } = await request(widget, ConversationDocument, { id: conversationId });
  console.log(c?.status, c?.transcript.map((e) => `${e.sender}: ${e.text}`));
  return turn.ticket?.number ?? null;
}

// What the types refuse. Each marked line must stay an error: tsc fails on an unused
// expect-error directive, so these lines prove the checks are real.
export async function refused(admin: Endpoint): Promise<void> {
  // @ts-expect-error: `stepId` is required
  await request(admin, OpenTicketDocument, { message: 'x' });
  // @ts-expect-error: `emails` is a list of strings
  await request(admin, CreateRoutingRuleDocument, { tag: '*', emails: [42] });
  // @ts-expect-error: not a DeliveryStatus
  await request(admin, DeliveriesDocument, { status: 'DONE' });
  // @ts-expect-error: StepInput is @oneOf: one kind only
  await request(admin, AddStepDocument, { flowId: '1', step: { message: { text: 'a' }, end: {} } });
  const { openTicket } = await request(admin, OpenTicketDocument, { stepId: '1', message: 'x' });
  // @ts-expect-error: a visitor's ticket has no `topic` (topic tags are internal)
  console.log(openTicket.ticket.topic);
  const { ticket } = await request(admin, TicketDocument, { id: '1' });
  // @ts-expect-error: `ticket` is null for an unknown id
  console.log(ticket.number);
}
