// Starts GraphiQL on this API: queries and mutations to /graphql, subscriptions over
// /graphql/ws, and the documented operations (clients/operations) as tabs, which the page
// carries as JSON in #tabs. Served by the API with the page, like the vendored files.
(function () {
  "use strict";
  var tabs = JSON.parse(document.getElementById("tabs").textContent);
  var url = new URL("/graphql", window.location.href).toString();
  var fetcher = GraphiQL.createFetcher({
    url: url,
    subscriptionUrl: url.replace(/^http/, "ws") + "/ws",
  });
  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultTabs: tabs,
      defaultEditorToolsVisibility: true,
    })
  );
})();
