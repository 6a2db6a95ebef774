// The chat on the page: a labelled region with a live log (screen readers hear what the bot
// says), a text field with its label, buttons for choices, and a status line for problems
// with a retry button. Every text goes in as text (never as HTML).

import { Chat } from './chat.js';

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

export function mount(script) {
  const key = script.dataset.key;
  const flow = script.dataset.flow;
  const endpoint = script.dataset.endpoint || new URL('/graphql', script.src).href;
  const title = script.dataset.title || 'Chat';

  const root = el('section', { class: 'tw-chat', role: 'region', 'aria-label': title });
  const heading = el('h2', { class: 'tw-title' }, title);
  const log = el('div', { class: 'tw-log', role: 'log', 'aria-live': 'polite', tabindex: '0' });
  const choices = el('div', { class: 'tw-choices', role: 'group', 'aria-label': 'Answers' });
  const form = el('form', { class: 'tw-form' });
  const inputId = `tw-input-${Math.random().toString(36).slice(2)}`;
  const label = el('label', { for: inputId, class: 'tw-sr' }, 'Your message');
  const input = el('input', { id: inputId, class: 'tw-input', autocomplete: 'off', maxlength: '10000' });
  const sendButton = el('button', { type: 'submit', class: 'tw-send' }, 'Send');
  const status = el('p', { class: 'tw-status', role: 'status' });
  form.append(label, input, sendButton);
  root.append(heading, log, choices, form, status);
  (script.dataset.target ? document.querySelector(script.dataset.target) : document.body).append(root);

  let busy = false;
  const setEnabled = (textAllowed) => {
    input.disabled = !textAllowed || busy;
    sendButton.disabled = !textAllowed || busy;
    form.hidden = !textAllowed;
  };

  const view = {
    say(sender, text) {
      log.append(el('p', { class: `tw-msg tw-${sender}` }, text));
      log.scrollTop = log.scrollHeight;
    },
    awaiting(kind, options) {
      choices.replaceChildren();
      status.replaceChildren();
      if (kind === 'CHOICE') {
        for (const option of options) {
          const button = el('button', { type: 'button', class: 'tw-choice' }, option.label);
          button.addEventListener('click', () => act(() => chat.choose(option)));
          choices.append(button);
        }
        const first = choices.querySelector('button');
        if (first) first.focus();
      }
      setEnabled(kind === 'TEXT');
      if (kind === 'TEXT') input.focus();
      if (kind === 'NOTHING') {
        const again = el('button', { type: 'button', class: 'tw-again' }, 'Start a new conversation');
        again.addEventListener('click', () => act(() => chat.restart()));
        choices.append(again);
      }
    },
    ticket(number, fresh) {
      root.dataset.ticket = String(number);
      // data-on-ticket: an element of the page shown once a ticket is opened, its
      // [data-ticket-number] elements filled in.
      const shown = script.dataset.onTicket && document.querySelector(script.dataset.onTicket);
      if (shown) {
        shown.querySelectorAll('[data-ticket-number]').forEach((n) => { n.textContent = `#${number}`; });
        shown.hidden = false;
      }
      if (fresh) {
        script.dispatchEvent(new CustomEvent('ticketing:ticket', { bubbles: true, detail: { number } }));
      }
    },
    problem(text, retry) {
      status.replaceChildren(el('span', {}, text));
      if (retry) {
        const button = el('button', { type: 'button', class: 'tw-retry' }, 'Try again');
        button.addEventListener('click', () => act(retry));
        status.append(' ', button);
        button.focus();
      }
    },
    clear() {
      log.replaceChildren();
      choices.replaceChildren();
      status.replaceChildren();
    },
  };

  const chat = new Chat({
    endpoint,
    key,
    flow,
    fetch: (...args) => window.fetch(...args),
    storage: window.localStorage,
    view,
  });

  async function act(work) {
    if (busy) return;
    busy = true;
    choices.querySelectorAll('button').forEach((b) => { b.disabled = true; });
    input.disabled = true;
    sendButton.disabled = true;
    status.replaceChildren();
    try {
      await work();
    } finally {
      busy = false;
      if (!form.hidden) {
        input.disabled = false;
        sendButton.disabled = false;
      }
    }
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = '';
    act(() => chat.send(text));
  });

  act(() => chat.begin());
  return chat;
}
