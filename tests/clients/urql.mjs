// urql (the `urql` 5 family: @urql/core 6) with its defaults against the server: queries go
// over GET (`preferGetMethod: 'within-url-limit'`), mutations over POST, and a `write`
// subscription over graphql-ws through subscriptionExchange.
//
// urql's GET carries no Content-Type and no CSRF header, so a server that prevents CSRF as
// Apollo Server does refuses it: the client sets `apollo-require-preflight` in fetchOptions,
// as the README tells urql users to. Prints one JSON line (see lib.mjs).

import { Client, cacheExchange, fetchExchange, gql, subscriptionExchange } from "@urql/core";
import { createClient as createWsClient } from "graphql-ws";
import WebSocket from "ws";

import {
  GRAPHQL_URL,
  TERMINAL,
  WS_URL,
  check,
  clientRun,
  newEmail,
  recordingFetch,
  within,
  ME_DOCUMENT,
  REGISTER_DOCUMENT,
} from "./lib.mjs";

const TOOLS = gql`
  query Tools {
    tools {
      name
      mode
    }
  }
`;
const ME = gql(ME_DOCUMENT);
const REGISTER = gql(REGISTER_DOCUMENT);
const WRITE_EVENTS = gql`
  subscription WriteEvents($input: WriteInput!) {
    write(input: $input) {
      __typename
      creationId
      seq
      ... on TokenDelta {
        text
      }
      ... on CreationCompleted {
        usage {
          completionTokens
        }
        creation {
          id
          status
          output
        }
      }
      ... on CreationFailed {
        code
        message
      }
    }
  }
`;

const requests = [];
const runner = clientRun("urql", { report: () => ({ requests }) });

await runner.run(async (step) => {
  let token = null;
  const wsClient = createWsClient({
    url: WS_URL,
    webSocketImpl: WebSocket,
    connectionParams: () => ({ Authorization: `Bearer ${token}` }),
    lazy: true,
    retryAttempts: 0,
  });
  const exchanges = [
    cacheExchange,
    fetchExchange,
    subscriptionExchange({
      forwardSubscription(request) {
        const input = { ...request, query: request.query || "" };
        return {
          subscribe(sink) {
            return { unsubscribe: wsClient.subscribe(input, sink) };
          },
        };
      },
    }),
  ];
  const fetch = recordingFetch(requests);
  // Exactly urql's defaults: no preferGetMethod, no headers.
  const bare = new Client({ url: GRAPHQL_URL, exchanges, fetch });
  const client = new Client({
    url: GRAPHQL_URL,
    exchanges,
    fetch,
    fetchOptions: () => ({
      headers: {
        "apollo-require-preflight": "true",
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
    }),
  });

  await step("bare GET is refused (CSRF)", async () => {
    const result = await bare.query(TOOLS, {}, { requestPolicy: "network-only" }).toPromise();
    const sent = requests.at(-1);
    check(sent.method === "GET", "urql's default sends queries over GET", sent);
    check(sent.contentType === null && sent.requirePreflight === null, "urql's GET carries no CSRF-safe header", sent);
    check(result.error && !result.data, "the server refuses a GET without a preflight-forcing header", result.data);
    check(sent.status === 400, "refused with HTTP 400", sent);
    check(/csrf|preflight/i.test(result.error.message), "refused as a potential CSRF", result.error.message);
    return { status: sent.status, error: result.error.message };
  });

  await step("query over GET", async () => {
    const result = await client.query(TOOLS, {}, { requestPolicy: "network-only" }).toPromise();
    check(!result.error, "tools over GET without error", result.error?.message);
    const sent = requests.at(-1);
    check(sent.method === "GET" && sent.status === 200, "the query went over GET", sent);
    check(sent.requirePreflight === "true", "with apollo-require-preflight", sent);
    const names = result.data.tools.map((t) => t.name);
    check(names.includes("write"), "tools lists write", names);
    return { tools: names, method: sent.method };
  });

  let user;
  await step("register", async () => {
    const email = newEmail("urql");
    const result = await client
      .mutation(REGISTER, { input: { email, password: "correct horse battery" } })
      .toPromise();
    check(!result.error, "register without error", result.error?.message);
    check(result.data.register.__typename === "AuthSession", "register answers an AuthSession", result.data);
    check(requests.at(-1).method === "POST", "mutations go over POST", requests.at(-1));
    token = result.data.register.accessToken;
    user = result.data.register.user;
    const me = await client.query(ME, {}, { requestPolicy: "network-only" }).toPromise();
    check(!me.error && me.data.me.id === user.id, "me over GET is the new user", me.data ?? me.error?.message);
    check(requests.at(-1).method === "GET", "me went over GET", requests.at(-1));
    return { email };
  });

  await step("subscribe write", async () => {
    const events = [];
    await within(
      30_000,
      "the terminal event of the write subscription",
      new Promise((resolve, reject) => {
        const { unsubscribe } = client
          .subscription(WRITE_EVENTS, { input: { prompt: "a fox at dawn", maxTokens: 24, seed: 3 } })
          .subscribe((result) => {
            if (result.error) return reject(result.error);
            events.push(result.data.write);
            if (TERMINAL.has(result.data.write.__typename)) {
              unsubscribe();
              resolve();
            }
          });
      }),
    );
    check(events[0].__typename === "CreationStarted" && events[0].seq === 1, "seq 1 is CreationStarted", events[0]);
    const terminal = events.at(-1);
    check(terminal.__typename === "CreationCompleted", "it completes", terminal);
    const text = events.filter((e) => e.__typename === "TokenDelta").map((e) => e.text).join("");
    check(text.length > 0 && text === terminal.creation.output, "the deltas add up to the output", { text, terminal });
    check(terminal.creation.status === "COMPLETED", "the creation is COMPLETED", terminal.creation);
    await wsClient.dispose();
    return { events: events.length, text };
  });
});
