// Entry point: <script src=".../widget.js" data-key="tk_widget_..." data-flow="<flow id>">.
// Optional: data-target (a CSS selector to mount in; default the end of <body>), data-title,
// data-endpoint (default: /graphql on the script's own origin), data-on-ticket (a CSS
// selector: that element is shown once a ticket is opened, its [data-ticket-number] elements
// filled in). A `ticketing:ticket` event (detail: { number }) bubbles from the script tag too. The stylesheet is widget.css
// beside it, added to the page once.
import { mount } from './ui.js';

const script = document.currentScript;
if (script && !document.querySelector('link[data-ticketing-widget]')) {
  const css = document.createElement('link');
  css.rel = 'stylesheet';
  css.href = new URL('widget.css', script.src).href;
  css.dataset.ticketingWidget = '';
  document.head.append(css);
}
if (script) {
  const start = () => mount(script);
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
}
