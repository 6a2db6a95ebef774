// The conversation as the widget keeps it: GraphQL calls with the widget key, the
// conversation's id kept across page reloads, and a turn that failed on the network sent
// again with the same clientMessageId (the API answers a repeated id with its first answer,
// so a retry never says anything twice). No DOM here: the page side is ui.js.

const TURN = 'botMessages awaiting options { id label } ticket { number }';
const START = `mutation($f: ID!) { startConversation(input: { flowId: $f }) { conversation { id } ${TURN} } }`;
const SEND = `mutation($c: ID!, $t: String!, $m: String!) { sendVisitorMessage(input: { conversationId: $c, text: $t, clientMessageId: $m }) { ${TURN} } }`;
const CHOOSE = `mutation($c: ID!, $o: ID!, $m: String!) { chooseOption(input: { conversationId: $c, optionId: $o, clientMessageId: $m }) { ${TURN} } }`;
const RESUME = 'query($c: ID!) { conversation(id: $c) { status awaiting options { id label } transcript { sender text } ticket { number } } }';

/** A GraphQL answer with errors: `code` is the API's `extensions.code`. */
export class ApiError extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

/** The network failed (no answer, or not a GraphQL one): the turn may be sent again. */
export class NetworkError extends Error {}

/** A random id for a turn (the API's de-duplication key). */
export function newId(random = globalThis.crypto) {
  const bytes = new Uint8Array(16);
  random.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export class Chat {
  /**
   * endpoint: the GraphQL URL; key: the widget key; flow: the flow's id;
   * fetch, storage (getItem/setItem/removeItem): injected for tests;
   * view: { say(sender, text), awaiting(kind, options), ticket(number), problem(text, retry) }.
   */
  constructor({ endpoint, key, flow, fetch, storage, view }) {
    Object.assign(this, { endpoint, key, flow, fetch, storage, view });
    this.slot = `ticketing-widget:${flow}`;
    this.state = null;
    // Visitor lines the conversation holds, as far as the widget knows: a turn left
    // unanswered by a reload is in the transcript when the API took it.
    this.visitorLines = 0;
  }

  load() {
    try {
      return JSON.parse(this.storage.getItem(this.slot) || 'null');
    } catch {
      return null;
    }
  }

  save() {
    try {
      this.storage.setItem(this.slot, JSON.stringify(this.state));
    } catch {
      // Storage full or refused (private mode): the conversation lasts as long as the page.
    }
  }

  async call(query, variables) {
    let response;
    try {
      response = await this.fetch(this.endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${this.key}` },
        body: JSON.stringify({ query, variables }),
      });
    } catch (e) {
      throw new NetworkError(String(e));
    }
    let body;
    try {
      body = await response.json();
    } catch {
      throw new NetworkError(`HTTP ${response.status}`);
    }
    if (body.errors && body.errors.length) {
      const first = body.errors[0];
      throw new ApiError(first.message, first.extensions && first.extensions.code);
    }
    return body.data;
  }

  /** Picks up the stored conversation (and a turn left unanswered), or starts one. */
  async begin() {
    this.state = this.load();
    if (this.state && this.state.id) {
      let conversation = null;
      try {
        conversation = (await this.call(RESUME, { c: this.state.id })).conversation;
      } catch (e) {
        if (e instanceof NetworkError) {
          this.view.problem('The chat cannot be reached.', () => this.begin());
          return;
        }
      }
      if (conversation && conversation.status !== 'EXPIRED') {
        this.visitorLines = 0;
        for (const line of conversation.transcript) {
          if (line.sender === 'VISITOR') this.visitorLines += 1;
          this.view.say(line.sender === 'VISITOR' ? 'visitor' : 'bot', line.text);
        }
        if (conversation.ticket) this.view.ticket(conversation.ticket.number, false);
        const pending = this.state.pending;
        // A turn sent before the reload whose answer never came: if the transcript has it,
        // the API took it (its answer is shown above); otherwise it is sent again, same id.
        if (pending && this.visitorLines <= (pending.before || 0)) {
          this.view.say('visitor', pending.text !== undefined ? pending.text : pending.label);
          await this.turn(pending);
          return;
        }
        this.state.pending = null;
        this.save();
        this.view.awaiting(conversation.awaiting, conversation.options);
        return;
      }
    }
    await this.start();
  }

  async start() {
    this.state = { id: null, pending: null };
    this.visitorLines = 0;
    try {
      const data = await this.call(START, { f: this.flow });
      this.state.id = data.startConversation.conversation.id;
      this.save();
      this.show(data.startConversation);
    } catch (e) {
      this.view.problem(
        e instanceof NetworkError ? 'The chat cannot be reached.' : e.message,
        () => this.start(),
      );
    }
  }

  /** The visitor types `text`. */
  send(text) {
    this.view.say('visitor', text);
    return this.turn({ kind: 'text', text, id: newId(), before: this.visitorLines });
  }

  /** The visitor presses the button `option` ({ id, label }). */
  choose(option) {
    this.view.say('visitor', option.label);
    return this.turn({
      kind: 'choice',
      option: option.id,
      label: option.label,
      id: newId(),
      before: this.visitorLines,
    });
  }

  /** Sends a turn; kept until answered, so a reload or a retry sends the same one. */
  async turn(pending) {
    this.state.pending = pending;
    this.save();
    const c = this.state.id;
    try {
      const data =
        pending.kind === 'text'
          ? (await this.call(SEND, { c, t: pending.text, m: pending.id })).sendVisitorMessage
          : (await this.call(CHOOSE, { c, o: pending.option, m: pending.id })).chooseOption;
      this.state.pending = null;
      this.visitorLines = (pending.before || 0) + 1;
      this.save();
      this.show(data);
    } catch (e) {
      if (e instanceof NetworkError) {
        this.view.problem('Not sent: the connection failed.', () => this.turn(pending));
        return;
      }
      this.state.pending = null;
      this.save();
      if (e.code === 'CONVERSATION_EXPIRED') {
        this.view.problem('This conversation has expired.', () => this.restart());
        return;
      }
      this.view.problem(e.message, null);
    }
  }

  /** Forgets the conversation and starts a new one. */
  restart() {
    this.storage.removeItem(this.slot);
    this.view.clear();
    return this.start();
  }

  show(turn) {
    for (const text of turn.botMessages) this.view.say('bot', text);
    if (turn.ticket) this.view.ticket(turn.ticket.number, true);
    this.view.awaiting(turn.awaiting, turn.options);
  }
}
