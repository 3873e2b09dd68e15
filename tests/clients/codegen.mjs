// graphql-codegen against the live server: graphql-js's full introspection query (every
// option on) answers, the CLI types the schema (typescript plugin) and codegen/operations.graphql
// (typescript-operations) from the endpoint, and `tsc --noEmit` checks both with codegen/usage.ts.
//
// Usage: node codegen.mjs <server URL> [output folder]; CK_OUT_DIR also names the folder
// (default: a new temporary one). Prints one JSON line (see lib.mjs).

import { execFile } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { getIntrospectionQuery } from "graphql";

import { GRAPHQL_URL, check, clientRun } from "./lib.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const OUT = process.env.CK_OUT_DIR || process.argv[3] || mkdtempSync(join(tmpdir(), "ck-codegen-"));
const INTROSPECTION_OPTIONS = {
  descriptions: true,
  specifiedByUrl: true,
  directiveIsRepeatable: true,
  schemaDescription: true,
  inputValueDeprecation: true,
  oneOf: true,
};
const run = promisify(execFile);

/** Run a Node CLI from this folder (codegen finds its plugins from there); on failure throw
 * with everything it printed. */
async function node(what, args) {
  try {
    return await run(process.execPath, args, { cwd: HERE, timeout: 60_000, maxBuffer: 16 << 20 });
  } catch (error) {
    throw new Error(`${what} failed (exit ${error.code}):\n${error.stdout}\n${error.stderr}`);
  }
}

const runner = clientRun("codegen", { report: () => ({ outDir: OUT }) });

await runner.run(async (step) => {
  await step("introspection", async () => {
    const response = await fetch(GRAPHQL_URL, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query: getIntrospectionQuery(INTROSPECTION_OPTIONS) }),
    });
    const body = await response.json();
    check(response.status === 200 && !body.errors, "graphql-js's full introspection query answers", body.errors ?? response.status);
    const schema = body.data.__schema;
    check(schema.subscriptionType?.name === "Subscription", "the schema has subscriptions", schema.subscriptionType);
    return { types: schema.types.length, directives: schema.directives.map((d) => d.name) };
  });

  await step("generate", async () => {
    // typescript-operations 6 stands alone (its own input and enum types), so each plugin
    // writes its own file: the schema's types, and the operations' result and variable types.
    const scalars = { DateTime: "string", JSON: "unknown" };
    const config = {
      overwrite: true,
      schema: [{ [GRAPHQL_URL]: INTROSPECTION_OPTIONS }],
      documents: [join(HERE, "codegen", "operations.graphql")],
      generates: {
        [join(OUT, "schema-types.ts")]: {
          plugins: ["typescript"],
          config: { strictScalars: true, scalars, enumsAsTypes: true },
        },
        [join(OUT, "operations.ts")]: {
          plugins: ["typescript-operations"],
          config: { strictScalars: true, scalars },
        },
      },
    };
    writeFileSync(join(OUT, "codegen.json"), JSON.stringify(config, null, 2));
    const cli = join(HERE, "node_modules", "@graphql-codegen", "cli", "esm", "bin.js");
    await node("graphql-codegen", [cli, "--config", join(OUT, "codegen.json")]);
    const operations = readFileSync(join(OUT, "operations.ts"), "utf8");
    for (const name of ["WriteEventsSubscription", "MeQuery", "CancelMutation", "CreationsPageQuery"]) {
      check(operations.includes(`export type ${name} =`), `operations.ts declares ${name}`);
    }
    const schema = readFileSync(join(OUT, "schema-types.ts"), "utf8");
    check(schema.includes("export type Subscription ="), "schema-types.ts declares Subscription");
    return { files: ["schema-types.ts", "operations.ts"], bytes: operations.length + schema.length };
  });

  await step("typecheck", async () => {
    copyFileSync(join(HERE, "codegen", "usage.ts"), join(OUT, "usage.ts"));
    writeFileSync(
      join(OUT, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noEmit: true,
          target: "ES2022",
          module: "ESNext",
          moduleResolution: "Bundler",
          noUnusedLocals: true,
          noFallthroughCasesInSwitch: true,
          skipLibCheck: true,
          types: [],
        },
        files: ["schema-types.ts", "operations.ts", "usage.ts"],
      }),
    );
    const tsc = join(HERE, "node_modules", "typescript", "bin", "tsc");
    await node("tsc --noEmit", [tsc, "-p", join(OUT, "tsconfig.json")]);
    return { checked: ["schema-types.ts", "operations.ts", "usage.ts"] };
  });
});
