// Creation King's GraphiQL: starts the pinned GraphiQL from this app's own files.
// A static file rather than an inline script, so the page runs under a CSP without
// 'unsafe-inline'. URL parameters: q (the query), variables, operationName, headers (JSON; for
// tests and links: it is removed from the address bar once read).
(function () {
  "use strict";

  var DEFAULT_QUERY = [
    "# Creation King GraphiQL, served by this app (no CDN).",
    "#",
    "# Sign in with the register or login mutation, then put",
    '# {"Authorization": "Bearer <token>"} (or an API key as',
    "# X-API-Key) in Headers below: queries send them as HTTP",
    "# headers, subscriptions as the websocket's connection",
    "# parameters.",
    "",
    "{",
    "  tools {",
    "    name",
    "    mode",
    "  }",
    "}",
    "",
  ].join("\n");

  var params = new URLSearchParams(window.location.search);
  var httpUrl = window.location.origin + window.location.pathname;
  var wsUrl = httpUrl.replace(/^http/, "ws");

  function updateUrl(key, value) {
    if (value) {
      params.set(key, value);
    } else {
      params.delete(key);
    }
    var search = params.toString();
    window.history.replaceState(null, "", search ? "?" + search : window.location.pathname);
  }

  var initialHeaders = params.get("headers") || undefined;
  if (initialHeaders !== undefined) {
    updateUrl("headers", null); // credentials do not stay in the address bar
  }

  // One graphql-transport-ws client per header set: a subscription authenticates with the
  // headers typed in the editor, and a change of headers opens a new socket for the next one.
  var socket = { key: null, client: null };

  function wsClient(headers) {
    var key = JSON.stringify(headers);
    if (socket.key !== key) {
      if (socket.client !== null) {
        socket.client.dispose();
      }
      socket = {
        key: key,
        client: window.graphqlWs.createClient({
          url: wsUrl,
          connectionParams: headers,
          lazy: true,
          lazyCloseTimeout: 10000, // the next run within 10 s reuses the socket
          // Refused or expired credentials (4403, 4401) fail at once: retrying cannot help.
          shouldRetry: function (event) {
            return !(event instanceof CloseEvent && event.code >= 4400 && event.code < 4500);
          },
        }),
      };
    }
    return socket.client;
  }

  // The query's own parse, not the editor's (updated 100 ms after a change): a document set
  // and run at once must not go over the wrong transport.
  function isSubscription(graphQLParams) {
    var GraphQL = window.GraphiQL.GraphQL;
    try {
      var operation = GraphQL.getOperationAST(
        GraphQL.parse(graphQLParams.query),
        graphQLParams.operationName || null
      );
      return operation !== null && operation.operation === "subscription";
    } catch (error) {
      return false; // the server answers with the syntax error
    }
  }

  // An Observable, which GraphiQL accepts from a fetcher: Stop unsubscribes.
  function subscribe(client, graphQLParams) {
    return {
      subscribe: function (observer) {
        var dispose = client.subscribe(graphQLParams, {
          next: function (result) {
            observer.next(result);
          },
          error: function (error) {
            if (error instanceof CloseEvent) {
              // A plain object: GraphiQL shows its message without a stack trace.
              error = { message: ("The websocket closed: " + error.code + " " + error.reason).trim() };
            }
            observer.error(error);
          },
          complete: function () {
            observer.complete();
          },
        });
        return { unsubscribe: dispose };
      },
    };
  }

  // GraphiQL's own HTTP fetcher; it is never handed a document, so it never picks a socket.
  var httpFetcher = window.GraphiQL.createFetcher({ url: httpUrl });

  function fetcher(graphQLParams, options) {
    if (isSubscription(graphQLParams)) {
      return subscribe(wsClient((options && options.headers) || {}), graphQLParams);
    }
    return httpFetcher(graphQLParams, Object.assign({}, options, { documentAST: undefined }));
  }

  var element = window.React.createElement(window.GraphiQL, {
    fetcher: fetcher,
    defaultQuery: DEFAULT_QUERY,
    query: params.get("q") || undefined,
    variables: params.get("variables") || undefined,
    operationName: params.get("operationName") || undefined,
    headers: initialHeaders,
    onEditQuery: function (value) {
      updateUrl("q", value);
    },
    onEditVariables: function (value) {
      updateUrl("variables", value);
    },
    isHeadersEditorEnabled: true,
    shouldPersistHeaders: false,
    defaultEditorToolsVisibility: true,
    inputValueDeprecation: true,
  });
  window.ReactDOM.createRoot(document.getElementById("graphiql")).render(element);
})();
