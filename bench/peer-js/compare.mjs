// Compares the answers of two GraphQL servers (Stakegraph and the graphql-js peer) field by field.
//
//   node bench/peer-js/compare.mjs STAKEGRAPH_URL PEER_URL [--max-diffs N]
//   e.g. node bench/peer-js/compare.mjs http://127.0.0.1:18081/graphql http://127.0.0.1:18082/graphql
//
// Starts nothing itself. Sends the same queries to both, each page after the first through `after` with the
// cursor each server returned, until the listing ends: the dashboard query (queries/dashboard_page.graphql), the
// issue-12 variant with `strength { score }` on each relationship (as of a pinned time, and as of "now"), and a few
// more shapes that exercise the same rules (other orderings, other kinds, strength from the history). Floats must
// agree within 1e-9 relative (1e-6 for the unpinned "now", whose clock moves between the two requests); everything
// else exactly. Prints the first differences and exits 1 if any differ, 0 if all answers are identical.

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const [left, right] = process.argv.slice(2).filter((arg) => !arg.startsWith('--'));
if (!left || !right) {
  console.error('usage: node compare.mjs STAKEGRAPH_URL PEER_URL [--max-diffs N]');
  process.exit(2);
}
const maxIndex = process.argv.indexOf('--max-diffs');
const MAX_DIFFS = maxIndex >= 0 ? Number(process.argv[maxIndex + 1]) : 10;

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DASHBOARD = readFileSync(join(root, 'queries', 'dashboard_page.graphql'), 'utf8');

// The issue's variant: the dashboard with `strength { score }` on each relationship node.
const withStrength = (strengthArgs) =>
  DASHBOARD.replace(
    /query DashboardPage\(([^)]*)\)/,
    (_, vars) => `query DashboardPageStrength(${vars}${strengthArgs ? ', $asOf: DateTime' : ''})`,
  ).replace(
    'node { id type level trust commitment }',
    `node { id type level trust commitment strength${strengthArgs ? '(asOf: $asOf)' : ''} { score } }`,
  );

// The issue's table: 50 customers, status, manager name, ten relationships with strength and counterpart name.
const ISSUE_DASHBOARD = `query IssueDashboard($first: Int = 50, $after: String, $asOf: DateTime) {
  stakeholders(first: $first, after: $after, filter: { kinds: [CUSTOMER] }) {
    totalCount
    pageInfo { hasNextPage endCursor hasPreviousPage startCursor }
    edges {
      cursor
      node {
        id name
        ... on Customer { status relationshipManager { name } }
        relationships(first: 10) {
          totalCount
          pageInfo { hasNextPage endCursor }
          edges { cursor counterpart { name } node { id strength(asOf: $asOf) { score model asOf components { name value weight contribution } } } }
        }
      }
    }
  }
}`;

// Every stakeholder kind, other orderings of both lists, every field the peer serves.
const EVERYTHING = `query Everything($first: Int = 40, $after: String, $order: StakeholderSortField!, $dir: SortDirection!,
    $relOrder: RelationshipSort, $asOf: DateTime) {
  stakeholders(first: $first, after: $after, orderBy: { field: $order, direction: $dir }) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges {
      cursor
      node {
        __typename id masked key name kind primaryMarket markets power interest mendelow private createdAt updatedAt archivedAt
        ... on Customer { status segment lifetimeValue exitReason exitDate relationshipManager { id name masked } }
        ... on Supplier { category }
        ... on Distributor { channel region }
        ... on Employee { role department candidate }
        ... on MediaOutlet { outlet reach }
        ... on GovernmentBody { agency jurisdiction }
        relationships(first: 7, orderBy: $relOrder) {
          totalCount
          pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
          edges {
            cursor direction
            counterpart { __typename id masked name kind }
            node {
              id type level levelRank bonds trust commitment since basis createdAt updatedAt
              from { id } to { id }
              strength(asOf: $asOf) { score model asOf components { name value weight contribution } }
            }
          }
        }
      }
    }
  }
}`;

// Filters and the relationship list's own filter and paging.
const FILTERED = `query Filtered($first: Int = 25, $after: String) {
  stakeholders(first: $first, after: $after,
      filter: { kinds: [CUSTOMER, EMPLOYEE, DISTRIBUTOR], mendelow: [MANAGE_CLOSELY, KEEP_INFORMED], search: "a" }) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { id name
      relationships(first: 2, after: "cmVsYXRpb25zaGlwc3ww", orderBy: SINCE_ASC, filter: { minLevel: REACTIVE }) {
        totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor } nodes { id level since }
      }
      outgoing: relationships(filter: { direction: OUTGOING, types: [BUYS_FROM, MANAGES, KNOWS] }) { totalCount nodes { id type } }
    } }
  }
}`;

const pinned = new Date(Math.ceil(Date.now() / 1000) * 1000 + 3_600_000).toISOString(); // an hour ahead, whole second
const yearAgo = new Date(Date.now() - 365 * 86_400_000 + 123).toISOString(); // before most last interactions

const CASES = [
  { name: 'dashboard_page.graphql', query: DASHBOARD, variables: {} },
  { name: 'dashboard + strength { score } (asOf pinned)', query: withStrength(true), variables: { asOf: pinned } },
  { name: 'dashboard + strength { score } (now)', query: withStrength(false), variables: {}, tolerance: 1e-6 },
  { name: 'issue-12 dashboard, 10 relationships with strength (asOf pinned)', query: ISSUE_DASHBOARD, variables: { asOf: pinned } },
  { name: 'issue-12 dashboard, strength a year ago (from the history)', query: ISSUE_DASHBOARD, variables: { asOf: yearAgo } },
  {
    name: 'every kind by NAME DESC, relationships LEVEL_DESC',
    query: EVERYTHING,
    variables: { order: 'NAME', dir: 'DESC', relOrder: 'LEVEL_DESC', asOf: pinned },
  },
  {
    name: 'every kind by POWER ASC, relationships UPDATED_DESC',
    query: EVERYTHING,
    variables: { order: 'POWER', dir: 'ASC', relOrder: 'UPDATED_DESC', asOf: pinned },
    maxPages: 15,
  },
  { name: 'filters and relationship filters', query: FILTERED, variables: {} },
];

async function post(url, query, variables) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  const text = await response.text();
  try {
    return { status: response.status, body: JSON.parse(text) };
  } catch {
    return { status: response.status, body: { unparsable: text.slice(0, 500) } };
  }
}

const differences = [];

function close(a, b, tolerance) {
  if (a === b) return true;
  const scale = Math.max(Math.abs(a), Math.abs(b));
  return Math.abs(a - b) <= tolerance * scale || Math.abs(a - b) <= 1e-300;
}

let floats = 0;
let inexact = 0;
let worst = 0;

function compare(a, b, path, tolerance) {
  if (differences.length >= MAX_DIFFS) return;
  if (typeof a === 'number' && typeof b === 'number') {
    floats += 1;
    if (a !== b) {
      inexact += 1;
      worst = Math.max(worst, Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b)));
    }
    if (!close(a, b, tolerance)) differences.push(`${path}: ${a} vs ${b} (relative ${Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b))})`);
    return;
  }
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') {
    if (a !== b) differences.push(`${path}: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
    return;
  }
  if (Array.isArray(a) !== Array.isArray(b)) {
    differences.push(`${path}: array vs object`);
    return;
  }
  if (Array.isArray(a)) {
    if (a.length !== b.length) differences.push(`${path}: ${a.length} items vs ${b.length}`);
    for (let index = 0; index < Math.min(a.length, b.length); index += 1) compare(a[index], b[index], `${path}[${index}]`, tolerance);
    return;
  }
  for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (!(key in a) || !(key in b)) differences.push(`${path}.${key}: only in ${key in a ? 'the first' : 'the second'}`);
    else compare(a[key], b[key], `${path}.${key}`, tolerance);
  }
}

let pages = 0;
let values = 0;
const countValues = (value) => {
  if (value && typeof value === 'object') Object.values(value).forEach(countValues);
  else values += 1;
};

for (const testCase of CASES) {
  let after = null;
  let page = 0;
  const tolerance = testCase.tolerance ?? 1e-9;
  const before = differences.length;
  const inexactBefore = inexact;
  worst = 0;
  for (;;) {
    const variables = { ...testCase.variables, ...(after ? { after } : {}) };
    const [a, b] = await Promise.all([post(left, testCase.query, variables), post(right, testCase.query, variables)]);
    const where = `${testCase.name}, page ${page + 1}`;
    if (a.body.errors || b.body.errors || !a.body.data || !b.body.data) {
      differences.push(`${where}: errors: ${JSON.stringify(a.body.errors ?? a.body)} / ${JSON.stringify(b.body.errors ?? b.body)}`);
      break;
    }
    compare(a.body.data, b.body.data, `[${where}]`, tolerance);
    countValues(a.body.data);
    pages += 1;
    page += 1;
    const info = a.body.data.stakeholders.pageInfo;
    if (!info.hasNextPage || differences.length >= MAX_DIFFS || page >= (testCase.maxPages ?? Infinity)) break;
    after = info.endCursor;
  }
  console.log(
    `${differences.length === before ? 'same' : 'DIFFERENT'}  ${testCase.name} (${page} pages; ` +
      `${inexact - inexactBefore} numbers not bit-identical, largest relative difference ${worst.toPrecision(2)})`,
  );
  if (differences.length >= MAX_DIFFS) break;
}

if (differences.length) {
  console.log(`\nfirst ${differences.length} differences (first = ${left}, second = ${right}):`);
  for (const difference of differences) console.log(`  ${difference}`);
  process.exit(1);
}
console.log(`\nidentical: ${pages} pages, ${values} leaf values each (floats within 1e-9 relative; 1e-6 for "now")`);
console.log(`numbers: ${floats}, of which ${inexact} not bit-identical`);
