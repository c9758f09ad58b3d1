// Runs the GraphQL over HTTP server audit of the official `graphql-http` library (`auditServer`) against a running
// server and prints one JSON line per audit: {"id", "name", "status", "reason"}. `name` starts with the audit's
// level (MUST, SHOULD or MAY); `status` is "ok", "warn" (a SHOULD or MAY not met) or "error" (a MUST not met).
//
//   node http-audit.mjs <graphql-url> [<api-key>]
//
// With <api-key>, every request carries `Authorization: Bearer <api-key>`. Exits 0 once every audit ran (whatever
// their outcome: the caller decides what must pass), 1 when the audit itself could not run.

import { auditServer } from 'graphql-http';

const [url, key] = process.argv.slice(2);
if (!url) {
  process.stderr.write('usage: node http-audit.mjs <graphql-url> [<api-key>]\n');
  process.exit(2);
}

const fetchFn = key
  ? (input, init = {}) => {
      const headers = new Headers(init.headers);
      headers.set('authorization', `Bearer ${key}`);
      return fetch(input, { ...init, headers });
    }
  : fetch;

try {
  const results = await auditServer({ url, fetchFn });
  for (const result of results) {
    const reason = result.status === 'ok' ? null : result.reason;
    process.stdout.write(JSON.stringify({ id: result.id, name: result.name, status: result.status, reason }) + '\n');
  }
} catch (error) {
  process.stderr.write(`the audit could not run: ${error?.stack ?? error}\n`);
  process.exit(1);
}
