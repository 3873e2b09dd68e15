// Apollo Client 4 against the server: a query, sign-up, a `write` subscription over graphql-ws
// to its terminal event, `creations` pages through fetchMore, a cancel that updates the cache
// without a refetch, APQ with hashed GETs, and not one warning from Apollo or the console.
//
// Run with `node --conditions=development apollo.mjs <server URL>` so Apollo's development
// build (and its warnings) is the one loaded. Prints one JSON line (see lib.mjs).

import { createHash } from "node:crypto";
import { format } from "node:util";

import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { SetContextLink } from "@apollo/client/link/context";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions";
import { loadDevMessages, loadErrorMessages } from "@apollo/client/dev";
import { __DEV__ } from "@apollo/client/utilities/environment";
import { createClient } from "graphql-ws";
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
      description
    }
  }
`;
const ME = gql(ME_DOCUMENT);
const REGISTER = gql(REGISTER_DOCUMENT);
const CREATION_FIELDS = gql`
  fragment CreationFields on Creation {
    id
    status
    output
    usage {
      promptTokens
      completionTokens
    }
  }
`;
const EVENT_FIELDS = gql`
  fragment EventFields on CreationEvent {
    __typename
    id
    creationId
    seq
    ... on CreationStarted {
      model
    }
    ... on TokenDelta {
      text
      firstSeq
    }
    ... on CreationCompleted {
      usage {
        promptTokens
        completionTokens
      }
      creation {
        ...CreationFields
      }
    }
    ... on CreationFailed {
      code
      message
      usage {
        promptTokens
        completionTokens
      }
      creation {
        ...CreationFields
      }
    }
    ... on CreationCancelled {
      usage {
        promptTokens
        completionTokens
      }
      creation {
        ...CreationFields
      }
    }
  }
  ${CREATION_FIELDS}
`;
const WRITE_EVENTS = gql`
  subscription WriteEvents($input: WriteInput!) {
    write(input: $input) {
      ...EventFields
    }
  }
  ${EVENT_FIELDS}
`;
const CREATION_EVENTS = gql`
  subscription CreationEvents($id: ID!, $after: Int!) {
    creationEvents(id: $id, after: $after) {
      ...EventFields
    }
  }
  ${EVENT_FIELDS}
`;
const START_WRITE = gql`
  mutation StartWrite($input: WriteInput!, $wait: Boolean!) {
    write(input: $input, wait: $wait) {
      __typename
      ... on Creation {
        id
        status
      }
      ... on Error {
        code
        message
      }
    }
  }
`;
const CREATIONS = gql`
  query Creations($first: Int!, $after: String) {
    creations(first: $first, after: $after) {
      edges {
        cursor
        node {
          id
          tool
          status
        }
      }
      pageInfo {
        hasNextPage
        endCursor
      }
    }
  }
`;
const CREATION_STATUS = gql`
  query CreationStatus($id: ID!) {
    creation(id: $id) {
      id
      status
    }
  }
`;
const CANCEL = gql`
  mutation Cancel($id: ID!) {
    cancelCreation(id: $id) {
      __typename
      ... on Creation {
        ...CreationFields
      }
      ... on Error {
        code
        message
      }
    }
  }
  ${CREATION_FIELDS}
`;
const CREATION_STATUS_FRAGMENT = gql`
  fragment CachedStatus on Creation {
    id
    status
  }
`;

/** Every console.warn/error/log/info/debug call, Apollo's own messages included. */
function captureConsole() {
  const captured = [];
  for (const level of ["warn", "error", "log", "info", "debug"]) {
    console[level] = (...args) => {
      captured.push({ level, message: format(...args) });
    };
  }
  process.on("warning", (warning) => captured.push({ level: "process", message: String(warning) }));
  return captured;
}

/** possibleTypes for InMemoryCache, from the live schema (as Apollo's docs recommend). */
async function fetchPossibleTypes() {
  const response = await fetch(GRAPHQL_URL, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      query: "{ __schema { types { kind name possibleTypes { name } } } }",
    }),
  });
  const body = await response.json();
  check(response.ok && !body.errors, "introspection of possibleTypes failed", body);
  const possibleTypes = {};
  for (const type of body.data.__schema.types) {
    if (type.possibleTypes) possibleTypes[type.name] = type.possibleTypes.map((t) => t.name);
  }
  return possibleTypes;
}

function makeCache(possibleTypes) {
  return new InMemoryCache({
    possibleTypes,
    typePolicies: {
      Query: {
        fields: {
          creations: {
            keyArgs: ["tool", "ownerId"],
            merge(existing, incoming, { args }) {
              if (!existing || !args?.after) return incoming;
              return { ...incoming, edges: [...existing.edges, ...incoming.edges] };
            },
          },
        },
      },
    },
  });
}

/** Events of a subscription until its terminal event (or completion). */
function collect(client, query, variables, ms = 30_000) {
  const events = [];
  return within(
    ms,
    `the terminal event of ${query.definitions[0].name.value}`,
    new Promise((resolve, reject) => {
      const subscription = client.subscribe({ query, variables }).subscribe({
        next: ({ data, error }) => {
          if (error) return reject(error);
          const event = Object.values(data)[0];
          events.push(event);
          if (TERMINAL.has(event.__typename)) {
            subscription.unsubscribe();
            resolve(events);
          }
        },
        error: reject,
        complete: () => resolve(events),
      });
    }),
  );
}

function checkStream(events, terminalType) {
  check(events.length >= 2, "a stream has CreationStarted and a terminal event", events);
  check(events[0].__typename === "CreationStarted" && events[0].seq === 1, "seq 1 is CreationStarted", events[0]);
  const seqs = events.map((e) => e.seq);
  check(seqs.every((s, i) => i === 0 || s > seqs[i - 1]), "seq increases", seqs);
  check(events.every((e) => typeof e.id === "string" && e.id), "every event has an id", events);
  check(new Set(events.map((e) => e.id)).size === events.length, "event ids are distinct", events);
  const terminals = events.filter((e) => TERMINAL.has(e.__typename));
  check(terminals.length === 1 && events.at(-1) === terminals[0], "exactly one terminal event, last", events);
  const terminal = terminals[0];
  check(terminal.__typename === terminalType, `the terminal event is ${terminalType}`, terminal);
  const text = events.filter((e) => e.__typename === "TokenDelta").map((e) => e.text).join("");
  check(terminal.creation && terminal.creation.id === terminal.creationId, "the terminal event carries its creation", terminal);
  return { terminal, text };
}

// Node 20 has no global WebSocket; GraphQLWsLink looks for one when it reports socket errors.
globalThis.WebSocket ??= WebSocket;

const captured = captureConsole();
const requests = [];
const runner = clientRun("apollo", { report: () => ({ requests, console: captured }) });

await runner.run(async (step) => {
  let token = null;
  let wsClient;
  let client;

  await step("setup", async () => {
    check(__DEV__ === true, "Apollo's development build is loaded (node --conditions=development)");
    loadDevMessages();
    loadErrorMessages();
    const possibleTypes = await fetchPossibleTypes();
    check(possibleTypes.CreationEvent?.includes("TokenDelta"), "CreationEvent's possible types", possibleTypes);
    wsClient = createClient({
      url: WS_URL,
      webSocketImpl: WebSocket,
      connectionParams: () => (token ? { Authorization: `Bearer ${token}` } : {}),
      lazy: true,
      retryAttempts: 0,
    });
    const auth = new SetContextLink((previous) => ({
      headers: { ...previous.headers, ...(token ? { authorization: `Bearer ${token}` } : {}) },
    }));
    const http = ApolloLink.from([
      new PersistedQueryLink({
        sha256: (text) => createHash("sha256").update(text).digest("hex"),
        useGETForHashedQueries: true,
      }),
      auth,
      new HttpLink({ uri: GRAPHQL_URL, fetch: recordingFetch(requests) }),
    ]);
    client = new ApolloClient({
      cache: makeCache(possibleTypes),
      link: ApolloLink.split((op) => op.operationType === "subscription", new GraphQLWsLink(wsClient), http),
    });
    return { possibleTypes: Object.keys(possibleTypes).length };
  });

  await step("query tools", async () => {
    const { data, error } = await client.query({ query: TOOLS, fetchPolicy: "network-only" });
    check(!error, "tools query without error", error?.message);
    const names = data.tools.map((t) => t.name);
    check(names.includes("write"), "tools lists write", names);
    return { tools: names };
  });

  await step("me signed out", async () => {
    const { data, error } = await client.query({ query: ME, fetchPolicy: "network-only" });
    check(!error, "me signed out answers without an error", error?.message);
    check(data.me === null, "me is null when signed out", data);
    return { me: data.me };
  });

  let user;
  await step("register", async () => {
    const email = newEmail("apollo");
    const { data, error } = await client.mutate({
      mutation: REGISTER,
      variables: { input: { email, password: "correct horse battery" } },
    });
    check(!error, "register without error", error?.message);
    check(data.register.__typename === "AuthSession", "register answers an AuthSession", data.register);
    token = data.register.accessToken;
    user = data.register.user;
    const me = await client.query({ query: ME, fetchPolicy: "network-only" });
    check(me.data.me?.id === user.id && me.data.me.email === email, "me is the new user", me.data);
    return { email, userId: user.id };
  });

  let written;
  await step("subscribe write", async () => {
    const events = await collect(client, WRITE_EVENTS, {
      input: { prompt: "a lighthouse keeper's last night", maxTokens: 24, seed: 7 },
    });
    const { terminal, text } = checkStream(events, "CreationCompleted");
    check(terminal.creation.status === "COMPLETED", "the finished creation is COMPLETED", terminal.creation);
    check(text.length > 0 && text === terminal.creation.output, "the deltas add up to the output", { text, output: terminal.creation.output });
    check(terminal.usage.completionTokens === terminal.creation.usage.completionTokens, "usage agrees", terminal);
    const cached = client.cache.readFragment({
      id: client.cache.identify({ __typename: "Creation", id: terminal.creationId }),
      fragment: CREATION_STATUS_FRAGMENT,
    });
    check(cached?.status === "COMPLETED", "the cache holds the completed creation", cached);
    written = terminal.creationId;
    return {
      events: events.length,
      types: [...new Set(events.map((e) => e.__typename))],
      text,
      terminal: terminal.__typename,
      creationId: written,
    };
  });

  await step("paginate creations", async () => {
    const made = [written];
    for (let i = 0; i < 4; i += 1) {
      const { data, error } = await client.mutate({
        mutation: START_WRITE,
        variables: { input: { prompt: `page item ${i}`, maxTokens: 4 }, wait: true },
      });
      check(!error && data.write.__typename === "Creation", "write(wait: true) makes a creation", data ?? error?.message);
      made.push(data.write.id);
    }
    const watched = client.watchQuery({ query: CREATIONS, variables: { first: 2 } });
    const pages = [];
    const first = await within(15_000, "the first page", new Promise((resolve, reject) => {
      const sub = watched.subscribe({
        next: (result) => {
          if (result.data?.creations) {
            sub.unsubscribe();
            resolve(result);
          }
        },
        error: reject,
      });
    }));
    let page = first.data.creations;
    pages.push(page.edges.length);
    // keep the query watched while fetching more, as a list view would
    const keepAlive = watched.subscribe({ next: () => {}, error: () => {} });
    while (page.pageInfo.hasNextPage) {
      check(pages.length < 10, "pagination ends", pages);
      const more = await watched.fetchMore({ variables: { after: page.pageInfo.endCursor } });
      page = more.data.creations;
      pages.push(page.edges.length);
    }
    keepAlive.unsubscribe();
    const merged = client.readQuery({ query: CREATIONS, variables: { first: 2 } });
    const ids = merged.creations.edges.map((e) => e.node.id);
    check(new Set(ids).size === ids.length, "no creation twice in the merged list", ids);
    check(JSON.stringify(ids) === JSON.stringify([...made].reverse()), "every creation, newest first", { ids, made });
    return { pages, ids };
  });

  await step("cancel updates the cache", async () => {
    const { data } = await client.mutate({
      mutation: START_WRITE,
      variables: { input: { prompt: "a long, slow saga", maxTokens: 2000 }, wait: false },
    });
    check(data.write.__typename === "Creation", "a long write starts", data.write);
    const id = data.write.id;
    const statuses = [];
    const watched = client.watchQuery({ query: CREATION_STATUS, variables: { id } });
    let sawCancelled;
    const cancelled = new Promise((resolve) => {
      sawCancelled = resolve;
    });
    const firstResult = new Promise((resolve, reject) => {
      watched.subscribe({
        next: (result) => {
          if (!result.data?.creation) return;
          statuses.push(result.data.creation.status);
          resolve(result);
          if (result.data.creation.status === "CANCELLED") sawCancelled();
        },
        error: reject,
      });
    });
    const running = await within(15_000, "the running creation", firstResult);
    check(["QUEUED", "RUNNING"].includes(running.data.creation.status), "the creation is running", running.data);
    const before = requests.length;
    const result = await client.mutate({ mutation: CANCEL, variables: { id } });
    check(!result.error, "cancelCreation without error", result.error?.message);
    const answer = result.data.cancelCreation;
    check(answer.__typename === "Creation" && answer.id === id, "cancelCreation returns the creation", answer);
    check(answer.status === "CANCELLED", "cancelCreation returns it in its final CANCELLED state", answer);
    await within(5_000, "the watched creation to show CANCELLED", cancelled);
    const cached = client.cache.readFragment({
      id: client.cache.identify({ __typename: "Creation", id }),
      fragment: CREATION_STATUS_FRAGMENT,
    });
    check(cached?.status === "CANCELLED", "the cache entry says CANCELLED", cached);
    const after = requests.slice(before).map((r) => r.operationName);
    check(after.every((name) => name === "Cancel"), "no refetch: only the Cancel mutation went out", after);
    const replay = await collect(client, CREATION_EVENTS, { id, after: 0 });
    const { terminal, text } = checkStream(replay, "CreationCancelled");
    check(terminal.creation.status === "CANCELLED", "the replayed terminal event's creation is CANCELLED", terminal.creation);
    check(text === terminal.creation.output, "the replayed deltas add up to the kept output", { text, output: terminal.creation.output });
    return { id, statuses, requestsAfterCancel: after, replayed: replay.length };
  });

  await step("apq over GET", async () => {
    // A second run of an already registered query: the hash alone, over GET.
    const before = requests.length;
    const { data, error } = await client.query({ query: TOOLS, fetchPolicy: "network-only" });
    check(!error && data.tools.length > 0, "the hashed query answers", error?.message);
    const tools = requests.filter((r) => r.operationName === "Tools");
    const notFound = tools.find((r) => r.errorCodes.includes("PERSISTED_QUERY_NOT_FOUND"));
    check(notFound && notFound.method === "GET" && notFound.sentHash && !notFound.sentQuery,
      "the first Tools request was a hash-only GET answered PERSISTED_QUERY_NOT_FOUND", tools);
    const registered = tools.find((r) => r.sentQuery && r.sentHash && r.status === 200 && !r.errorCodes.length);
    check(registered, "the retry sent the query with its hash and succeeded", tools);
    const last = requests.slice(before);
    check(last.length === 1, "one request for an already registered query", last);
    check(last[0].method === "GET" && last[0].sentHash && !last[0].sentQuery && last[0].status === 200 && !last[0].errorCodes.length,
      "a hash-only GET answered the query", last[0]);
    const gets = requests.filter((r) => r.method === "GET");
    check(gets.every((r) => r.contentType === "application/json"), "Apollo's GETs carry a non-simple Content-Type", gets);
    return { toolsRequests: tools, hashedGets: gets.filter((r) => r.status === 200 && !r.errorCodes.length).length };
  });

  await step("no warnings", async () => {
    client.stop();
    await wsClient.dispose();
    check(captured.length === 0, "no warnings from Apollo Client or the console", captured);
    return { requests: requests.length };
  });
});
