// Runs one operation over Server-Sent Events with the official `graphql-sse` client (distinct connections mode) and
// prints each result as one JSON line.
//
//   node sse-client.mjs <stream-url> <api-key> <query> <variables-json> <count>
//
// Exits 0 once it has printed <count> results, or when the server completes the operation after at least <count>
// (a query or mutation has one). Exits 1, with the reason on stderr, on any error: a refused request, a dropped
// stream, the operation completing with fewer than <count> results, or no <count> results within 20 s.

import { createClient } from 'graphql-sse';

const TIMEOUT_MS = 20_000;
const [url, key, query, variablesArgument, countArgument] = process.argv.slice(2);
const count = Number(countArgument);
if (!url || !key || !query || variablesArgument === undefined || !Number.isInteger(count) || count < 1) {
  process.stderr.write('usage: node sse-client.mjs <stream-url> <api-key> <query> <variables-json> <count>\n');
  process.exit(2);
}

const client = createClient({ url, headers: { authorization: `Bearer ${key}` }, retryAttempts: 0 });
let received = 0;
const timer = setTimeout(() => {
  process.stderr.write(`sse-client: timed out after ${TIMEOUT_MS / 1000} s with ${received} of ${count} results\n`);
  process.exit(1);
}, TIMEOUT_MS);

function finish(code, message) {
  clearTimeout(timer);
  if (message) process.stderr.write(`sse-client: ${message}\n`);
  client.dispose();
  process.stdout.write('', () => process.exit(code));
}

try {
  const results = client.iterate({ query, variables: JSON.parse(variablesArgument) });
  for await (const result of results) {
    process.stdout.write(JSON.stringify(result) + '\n');
    received += 1;
    if (received === count) {
      await results.return?.();
      finish(0);
    }
  }
  finish(received >= count ? 0 : 1, received >= count ? undefined : `completed after ${received} of ${count} results`);
} catch (error) {
  finish(1, `the stream failed: ${error instanceof Error ? error.message : JSON.stringify(error)}`);
}
