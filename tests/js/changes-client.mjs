// Subscribes to `changes` with the official `graphql-ws` client and prints each event as one JSON line.
//
//   node changes-client.mjs <ws-url> <api-key> <after-cursor|-> <count> [<document.graphql>]
//
// Exits 0 once it has received <count> events. Exits 1, with the reason on stderr, on any error: a refused or
// dropped connection, GraphQL errors, the subscription completing early, or no <count> events within 20 s.
// `-` (or an empty string) as the cursor omits `after`: the server then streams only changes from now on.
// <document.graphql>, when given, is the subscription to run (such as queries/changes_feed.graphql): it takes
// `$after` and selects `changes`; without it, a small inline one runs.

import { readFileSync } from 'node:fs';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const TIMEOUT_MS = 20_000;
const QUERY = 'subscription($after: String) { changes(after: $after) { cursor kind stakeholders } }';

const [url, key, afterArgument, countArgument, documentPath] = process.argv.slice(2);
const count = Number(countArgument);
if (!url || !key || afterArgument === undefined || !Number.isInteger(count) || count < 1) {
  process.stderr.write('usage: node changes-client.mjs <ws-url> <api-key> <after-cursor|-> <count> [<document.graphql>]\n');
  process.exit(2);
}
const after = afterArgument === '' || afterArgument === '-' ? null : afterArgument;

let finished = false;
let unsubscribe = () => {};

const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: { Authorization: `Bearer ${key}` },
  retryAttempts: 0,
});

/** Ends the process once stdout has been flushed; the first call wins. */
function finish(code, message) {
  if (finished) return;
  finished = true;
  clearTimeout(timer);
  if (message) process.stderr.write(`changes-client: ${message}\n`);
  unsubscribe();
  client.dispose();
  // An empty write's callback runs after everything written before it has been handed to the OS.
  process.stdout.write('', () => process.exit(code));
}

/**
 * A readable reason for whatever graphql-ws passes to `error`: an Error, GraphQL errors, a CloseEvent (the server
 * closed the socket) or an ErrorEvent (the socket failed, e.g. the connection was refused).
 */
function describe(error) {
  if (Array.isArray(error)) return `GraphQL errors: ${JSON.stringify(error)}`;
  if (error instanceof Error) return error.message;
  if (error && typeof error === 'object') {
    if (typeof error.code === 'number') {
      return `the connection closed with code ${error.code}${error.reason ? `: ${error.reason}` : ''}`;
    }
    if (error.message || error.error) return `the connection failed: ${error.message || error.error}`;
  }
  return String(error);
}

let received = 0;
const timer = setTimeout(
  () => finish(1, `timed out after ${TIMEOUT_MS / 1000} s with ${received} of ${count} events`),
  TIMEOUT_MS,
);

unsubscribe = client.subscribe(
  { query: documentPath ? readFileSync(documentPath, 'utf8') : QUERY, variables: { after } },
  {
    next(result) {
      if (finished) return;
      if (result.errors?.length) {
        finish(1, `GraphQL errors: ${JSON.stringify(result.errors)}`);
        return;
      }
      const event = result.data?.changes;
      if (!event) {
        finish(1, `a result without data.changes: ${JSON.stringify(result)}`);
        return;
      }
      process.stdout.write(`${JSON.stringify(event)}\n`);
      received += 1;
      if (received >= count) finish(0);
    },
    error(error) {
      finish(1, describe(error));
    },
    complete() {
      finish(1, `the subscription completed after ${received} of ${count} events`);
    },
  },
);
