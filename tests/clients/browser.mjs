// Debian's chromium, driven by playwright-core, against the server. Two modes (argv):
//   page      open CK_PAGE_URL (tests/clients/page on another origin): it signs up over HTTP,
//             streams a `write` over graphql-transport-ws and renders it; check what it shows.
//   graphiql  open the app's own GraphiQL (GET /graphql) with a subscription, the token in the
//             headers editor, run it, and watch the result pane show the events.
// Environment: CK_URL (the API), CK_PAGE_URL (page mode), CK_TOKEN (graphiql mode),
// CK_SCREENSHOT (PNG path), CK_CHROMIUM (default /usr/bin/chromium). Prints one JSON line.

import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

import { chromium } from "playwright-core";

import { GRAPHQL_URL, check, clientRun } from "./lib.mjs";

const MODE = process.argv.slice(2).find((arg) => ["page", "graphiql"].includes(arg));
const SCREENSHOT = process.env.CK_SCREENSHOT || join(tmpdir(), `ck-${MODE}.png`);
const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const GRAPHIQL_SUBSCRIPTION = `subscription Story($input: WriteInput!) {
  write(input: $input) {
    __typename
    seq
    ... on TokenDelta { text }
    ... on CreationCompleted { creation { status output } }
  }
}`;

const consoleMessages = [];
const failedRequests = [];
const runner = clientRun(`browser:${MODE}`, {
  timeoutMs: Number(process.env.CK_TIMEOUT_MS || 120_000),
  report: () => ({ console: consoleMessages, failedRequests, screenshot: SCREENSHOT }),
});

async function openBrowser() {
  const profile = mkdtempSync(join(tmpdir(), "ck-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CK_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 1280, height: 900 },
    timeout: 60_000,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (message) => {
    consoleMessages.push({ type: message.type(), text: message.text() });
  });
  page.on("pageerror", (error) => consoleMessages.push({ type: "pageerror", text: String(error) }));
  page.on("requestfailed", (request) => {
    failedRequests.push({ url: request.url(), error: request.failure()?.errorText ?? "" });
  });
  return {
    page,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

let screenshotTaken = false;

async function screenshot(page) {
  screenshotTaken = true;
  mkdirSync(dirname(SCREENSHOT), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  process.stderr.write(`browser:${MODE}: screenshot ${SCREENSHOT}\n`);
}

async function crossOriginPage(step, page) {
  const pageUrl = process.env.CK_PAGE_URL;
  check(pageUrl, "CK_PAGE_URL names the page on the other origin");
  const url = `${pageUrl}?${new URLSearchParams({ api: new URL(GRAPHQL_URL).origin, maxTokens: "48" })}`;

  await step("open page", async () => {
    await page.goto(url, { waitUntil: "load", timeout: 30_000 });
    check(new URL(page.url()).origin !== new URL(GRAPHQL_URL).origin, "the page is on another origin", page.url());
    return { url: page.url() };
  });

  await step("stream", async () => {
    await page.waitForSelector("body[data-state=done], body[data-state=error]", { timeout: 45_000 });
    await screenshot(page);
    const shown = await page.evaluate(() => ({
      state: document.body.dataset.state,
      error: window.ckState.error,
      who: document.getElementById("who").textContent,
      userId: document.getElementById("user-id").textContent,
      text: document.getElementById("text").textContent,
      deltas: window.ckState.deltas,
      events: window.ckState.events,
      terminal: document.getElementById("terminal").dataset.typename ?? null,
      status: document.getElementById("terminal-status").textContent,
      tokens: document.getElementById("terminal-tokens").textContent,
      output: document.getElementById("output").textContent,
    }));
    check(shown.state === "done", "the page signed in and streamed", shown.error);
    check(shown.who.includes("@example.com") && shown.userId, "the page shows the signed-in user", shown);
    check(shown.deltas.length > 0, "tokens arrived", shown);
    check(shown.text === shown.deltas.join(""), "the text shown equals the concatenated deltas", shown);
    check(shown.terminal === "CreationCompleted" && shown.status === "COMPLETED", "the terminal event is rendered", shown);
    check(shown.text === shown.output, "the streamed text equals the creation's output", shown);
    check(Number(shown.tokens) > 0, "the usage is rendered", shown.tokens);
    return shown;
  });
}

async function graphiql(step, page) {
  const token = process.env.CK_TOKEN;
  check(token, "CK_TOKEN is an access token for the headers editor");
  const query = new URLSearchParams({
    q: GRAPHIQL_SUBSCRIPTION,
    variables: JSON.stringify({ input: { prompt: "a story told in GraphiQL", maxTokens: 120 } }),
    headers: JSON.stringify({ Authorization: `Bearer ${token}` }),
  });

  await step("open graphiql", async () => {
    const response = await page.goto(`${GRAPHQL_URL}?${query}`, { waitUntil: "load", timeout: 30_000 });
    check(response.status() === 200, "GET /graphql answers the IDE", response.status());
    await page.waitForSelector(".graphiql-execute-button", { timeout: 30_000 });
    check(!page.url().includes("headers="), "the token left the address bar", page.url());
    // Start recording every state of the result pane before running.
    await page.evaluate(() => {
      window.ckResults = [];
      const pane = document.querySelector(".result-window");
      const record = () => {
        const text = pane.textContent;
        if (window.ckResults.at(-1) !== text) window.ckResults.push(text);
      };
      new MutationObserver(record).observe(pane, { childList: true, subtree: true, characterData: true });
    });
    return { url: page.url() };
  });

  await step("run subscription", async () => {
    await page.click(".graphiql-execute-button");
    await page.waitForFunction(
      () => /CreationCompleted|"errors"/.test(document.querySelector(".result-window").textContent),
      undefined,
      { timeout: 45_000 },
    );
    // let the pane settle on the final event
    await page.waitForTimeout(300);
    await screenshot(page);
    const states = await page.evaluate(() => window.ckResults);
    const final = states.at(-1) ?? "";
    check(!/"errors"/.test(final), "the subscription ran without errors", final.slice(0, 2000));
    check(/"__typename":\s*"CreationCompleted"/.test(final), "the result pane ends on CreationCompleted", final.slice(0, 2000));
    check(/"status":\s*"COMPLETED"/.test(final), "with the creation COMPLETED", final.slice(0, 2000));
    const typenames = states.flatMap((s) => [...s.matchAll(/"__typename":\s*"(\w+)"/g)].map((m) => m[1]));
    check(typenames.includes("TokenDelta"), "the pane showed token deltas as they came", typenames);
    const seqs = states.flatMap((s) => [...s.matchAll(/"seq":\s*(\d+)/g)].map((m) => Number(m[1])));
    check(new Set(seqs).size >= 2, "several events were shown in turn", seqs);
    return { states: states.length, typenames: [...new Set(typenames)], seqs: [...new Set(seqs)] };
  });
}

await runner.run(async (step) => {
  check(MODE, "pass the mode: page or graphiql");
  let browser;
  await step("launch chromium", async () => {
    browser = await openBrowser();
    return { version: browser.page.context().browser()?.version() ?? "persistent context" };
  });
  try {
    await (MODE === "page" ? crossOriginPage(step, browser.page) : graphiql(step, browser.page));
    await step("no page errors", async () => {
      const errors = consoleMessages.filter((m) => ["error", "pageerror"].includes(m.type));
      check(errors.length === 0, "no errors in the browser console", errors);
      return { console: consoleMessages.length };
    });
  } catch (error) {
    if (!screenshotTaken) await screenshot(browser.page).catch(() => {});
    throw error;
  } finally {
    await browser.close();
  }
});
