// Shared by the client scripts: where the server is, named steps, a deadline, one JSON result.
//
// Every script prints exactly one JSON line on stdout: {client, ok, steps: {<step>: facts}}.
// A failed step also goes to stderr as "<client>: step '<name>' failed: <error>" and the
// script exits 1, so the pytest side can say which client and which step broke.

import { randomUUID } from "node:crypto";

// Documents every client script sends the same way (each wraps them in its own `gql`).
export const ME_DOCUMENT = `
  query Me {
    me {
      id
      email
    }
  }
`;
export const REGISTER_DOCUMENT = `
  mutation Register($input: RegisterInput!) {
    register(input: $input) {
      __typename
      ... on AuthSession {
        accessToken
        user {
          id
          email
        }
      }
      ... on Error {
        code
        message
      }
    }
  }
`;

const urlArgument = process.argv.slice(2).find((arg) => /^https?:\/\//.test(arg));
export const HTTP_URL = (process.env.CK_URL || urlArgument || "").replace(/\/+$/, "");
export const GRAPHQL_URL = `${HTTP_URL}/graphql`;
export const WS_URL = GRAPHQL_URL.replace(/^http/, "ws");

/**
 * A runner of named steps for one client; `run` never returns (it exits the process).
 * `report()` adds fields to the result, also on failure (e.g. the requests made).
 */
export function clientRun(
  client,
  { timeoutMs = Number(process.env.CK_TIMEOUT_MS || 90_000), report = () => ({}) } = {},
) {
  const steps = {};
  let current = "setup";

  function finish(ok, error) {
    const result = { client, ok, steps, ...report() };
    if (!ok) {
      result.failedStep = current;
      result.error = String(error && error.stack ? error.stack : error);
      process.stderr.write(`${client}: step '${current}' failed: ${result.error}\n`);
    }
    process.stdout.write(JSON.stringify(result) + "\n");
    process.exit(ok ? 0 : 1);
  }

  return {
    steps,
    /** Run `body(step)`; `step(name, fn)` records fn's return value under `name`. */
    async run(body) {
      if (!HTTP_URL) finish(false, new Error("no server URL: set CK_URL or pass it as an argument"));
      const timer = setTimeout(
        () => finish(false, new Error(`gave up after ${timeoutMs} ms (overall deadline)`)),
        timeoutMs,
      );
      try {
        await body(async (name, fn) => {
          current = name;
          steps[name] = (await fn()) ?? true;
          return steps[name];
        });
        current = "done";
      } catch (error) {
        finish(false, error);
      }
      finish(true);
    },
  };
}

/** Throw with `message` (and the actual value) unless `condition`. */
export function check(condition, message, actual) {
  if (!condition) {
    const shown = actual === undefined ? "" : `; got ${JSON.stringify(actual)}`;
    throw new Error(`${message}${shown}`);
  }
}

/** Resolve with `promise`, or reject after `ms` naming what was awaited. */
export function within(ms, what, promise) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/** A fresh e-mail address for a sign-up. */
export function newEmail(client) {
  return `${client}-${randomUUID().slice(0, 8)}@example.com`;
}

export const TERMINAL = new Set(["CreationCompleted", "CreationFailed", "CreationCancelled"]);

/**
 * A `fetch` that records every request it makes (method, operation, whether the query text
 * and a persisted-query hash were sent, the CSRF-relevant headers) and the response status.
 */
export function recordingFetch(log, inner = globalThis.fetch) {
  return async (input, init = {}) => {
    const url = new URL(typeof input === "string" ? input : input.url);
    const method = (init.method || "GET").toUpperCase();
    const headers = Object.fromEntries(
      Object.entries(init.headers || {}).map(([key, value]) => [key.toLowerCase(), value]),
    );
    let params = {};
    if (method === "GET") {
      params = Object.fromEntries(url.searchParams.entries());
      if (params.extensions) params.extensions = JSON.parse(params.extensions);
    } else if (typeof init.body === "string") {
      params = JSON.parse(init.body);
    }
    const entry = {
      method,
      operationName: params.operationName ?? null,
      sentQuery: Boolean(params.query),
      sentHash: Boolean(params.extensions?.persistedQuery?.sha256Hash),
      contentType: headers["content-type"] ?? null,
      requirePreflight: headers["apollo-require-preflight"] ?? null,
      status: null,
      errorCodes: [],
    };
    log.push(entry);
    const response = await inner(input, init);
    entry.status = response.status;
    try {
      const body = await response.clone().json();
      entry.errorCodes = (body.errors || []).map((e) => e.extensions?.code ?? e.message);
    } catch {
      entry.errorCodes = ["<not JSON>"];
    }
    return response;
  };
}
