// A page on another origin: signs up over HTTP (fetch, CORS), reads `me` with the token,
// then streams a `write` over graphql-transport-ws with the token in connectionParams and
// renders the tokens as they arrive. body[data-state] ends as "done" or "error".
(function () {
  "use strict";

  var params = new URLSearchParams(window.location.search);
  var api = (params.get("api") || "").replace(/\/+$/, "");
  var prompt = params.get("prompt") || "a letter from another origin";
  var maxTokens = Number(params.get("maxTokens") || 48);
  var state = { step: "start", deltas: [], events: [], error: null };
  window.ckState = state;

  function $(id) {
    return document.getElementById(id);
  }

  function fail(error) {
    state.error = state.step + ": " + (error && error.message ? error.message : String(error));
    $("error").textContent = state.error;
    document.body.dataset.state = "error";
  }

  async function graphql(query, variables, token) {
    var headers = { "Content-Type": "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    var response = await fetch(api + "/graphql", {
      method: "POST",
      headers: headers,
      body: JSON.stringify({ query: query, variables: variables }),
    });
    var body = await response.json();
    if (!response.ok || body.errors) {
      throw new Error("HTTP " + response.status + " " + JSON.stringify(body.errors || body));
    }
    return body.data;
  }

  var REGISTER =
    "mutation Register($input: RegisterInput!) { register(input: $input) { __typename " +
    "... on AuthSession { accessToken user { id email } } ... on Error { code message } } }";
  var ME = "query Me { me { id email } }";
  var WRITE =
    "subscription Write($input: WriteInput!) { write(input: $input) { __typename creationId seq " +
    "... on TokenDelta { text } " +
    "... on CreationCompleted { usage { completionTokens } creation { id status output } } " +
    "... on CreationFailed { code message } " +
    "... on CreationCancelled { usage { completionTokens } } } }";

  function stream(token) {
    return new Promise(function (resolve, reject) {
      var client = window.graphqlWs.createClient({
        url: api.replace(/^http/, "ws") + "/graphql",
        connectionParams: { Authorization: "Bearer " + token },
        lazy: true,
        retryAttempts: 0,
      });
      var text = $("text");
      client.subscribe(
        { query: WRITE, variables: { input: { prompt: prompt, maxTokens: maxTokens } } },
        {
          next: function (result) {
            if (result.errors) {
              reject(new Error(JSON.stringify(result.errors)));
              return;
            }
            var event = result.data.write;
            state.events.push(event.__typename);
            $("event-count").textContent = String(state.events.length);
            if (event.__typename === "TokenDelta") {
              state.deltas.push(event.text);
              text.textContent += event.text;
            } else if (event.__typename !== "CreationStarted") {
              $("terminal").dataset.typename = event.__typename;
              $("terminal-type").textContent = event.__typename;
              $("terminal-status").textContent = event.creation ? event.creation.status : "";
              $("terminal-tokens").textContent = String(event.usage ? event.usage.completionTokens : "");
              $("output").textContent = event.creation ? event.creation.output : "";
            }
          },
          error: function (error) {
            reject(error instanceof Error ? error : new Error("socket closed: " + (error.code || "") + " " + (error.reason || "")));
          },
          complete: function () {
            client.dispose();
            resolve();
          },
        },
      );
    });
  }

  async function main() {
    $("api").textContent = api;
    state.step = "sign up";
    var email = "page-" + Math.random().toString(16).slice(2, 10) + "@example.com";
    var registered = await graphql(REGISTER, { input: { email: email, password: "correct horse battery" } });
    if (registered.register.__typename !== "AuthSession") {
      throw new Error(JSON.stringify(registered.register));
    }
    var token = registered.register.accessToken;
    state.step = "me";
    var me = (await graphql(ME, {}, token)).me;
    $("who").textContent = me.email;
    $("user-id").textContent = me.id;
    state.step = "stream";
    await stream(token);
    state.step = "done";
    document.body.dataset.state = "done";
  }

  main().catch(fail);
})();
