// graphql-js peer of Stakegraph (issue 12): the dashboard query served the way a competent graphql-js developer
// would, so that Stakegraph's serving speed is measured against something real.
//
// Stack: Node 20, graphql-js 16, graphql-http (its Node `http` handler), dataloader (one loader of each kind per
// request), better-sqlite3 (read-only, prepared statements, one SQL query per batch) over the SAME SQLite file
// Stakegraph writes (`stakegraph demo --db FILE`, or the file a running `stakegraph serve` uses). Single process,
// no cluster: pin it to one core with `taskset -c N node server.mjs ...`.
//
// What it serves, with Stakegraph's field names, types, global ids, cursors, orderings, privacy masking and
// strength formula (see the comments below for where each rule comes from in src/):
//   stakeholders(filter, orderBy, first, after) { totalCount pageInfo edges { cursor node } nodes }
//   stakeholder(id), relationship(id)
//   Stakeholder: id masked key name kind primaryMarket markets power interest mendelow private createdAt updatedAt
//     archivedAt relationships(filter, orderBy, first, after); Customer: status segment lifetimeValue exitReason
//     exitDate relationshipManager; the other kinds' own fields; MaskedStakeholder.
//   Relationship: id type from to level levelRank bonds trust commitment since basis createdAt updatedAt
//     strength(asOf) { score components { name value weight contribution } model asOf }
// Not served (not in the dashboard): strongestRelationships, interactions, strength.trend / fallsBelow, mutations,
// subscriptions, analyses. Every caller is anonymous (what `stakegraph serve --demo` allows on loopback): private
// stakeholders are masked, relationships with a private end are withheld, listings leave private rows out.
//
// Install (better-sqlite3 builds from source when its prebuilt binary cannot be downloaded; node-gyp then needs
// the Node headers, which Debian's nodejs package puts under /usr/include/node):
//   npm_config_nodedir=/usr npm ci --prefix bench/peer-js
// Run:
//   node bench/peer-js/server.mjs --db /tmp/peer/demo.db --listen 127.0.0.1:18082
//   (or PEER_DB=... PEER_LISTEN=127.0.0.1:18082 / PORT=18082; GraphQL at /graphql, GET and POST)
// Compare its answers with a running Stakegraph:
//   node bench/peer-js/compare.mjs http://127.0.0.1:18081/graphql http://127.0.0.1:18082/graphql

import http from 'node:http';
import Database from 'better-sqlite3';
import DataLoader from 'dataloader';
import { buildSchema, GraphQLError, GraphQLScalarType, Kind } from 'graphql';
import { createHandler } from 'graphql-http/lib/use/http';

// ---------------------------------------------------------------------------------------------------------------
// Configuration

function argument(name) {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 ? process.argv[index + 1] : undefined;
}

const DB_PATH = argument('db') ?? process.env.PEER_DB ?? './data/stakegraph.db';
const LISTEN = argument('listen') ?? process.env.PEER_LISTEN ?? `127.0.0.1:${argument('port') ?? process.env.PORT ?? 8082}`;
// Stakegraph's defaults: limits.max_page_size = 100, a page of 20 when `first` is not given (src/api/paging.rs).
const MAX_PAGE_SIZE = Number(process.env.PEER_MAX_PAGE_SIZE ?? 100);
const DEFAULT_PAGE_SIZE = 20;

// ---------------------------------------------------------------------------------------------------------------
// Schema: the subset of schema/schema.graphql the peer serves, copied type for type.

// The fields of the Stakeholder interface, which MaskedStakeholder declares alike (all nullable).
const STAKEHOLDER_FIELDS = `  id: ID!
  masked: Boolean!
  key: String
  name: String
  kind: StakeholderKind
  primaryMarket: Market
  markets: [Market!]
  power: Float
  interest: Float
  mendelow: Mendelow
  private: Boolean
  createdAt: DateTime
  updatedAt: DateTime
  archivedAt: DateTime
  relationships(filter: RelationshipFilter, orderBy: RelationshipSort, first: Int, after: String): RelationshipConnection
`;

const typeDefs = /* GraphQL */ `
scalar DateTime
scalar NaiveDate

enum StakeholderKind { CUSTOMER SUPPLIER DISTRIBUTOR EMPLOYEE MEDIA GOVERNMENT }
enum Market { CUSTOMER REFERRAL SUPPLIER INFLUENCE RECRUITMENT INTERNAL }
enum CustomerStatus { PROSPECT ACTIVE AT_RISK CHURNED WON_BACK }
enum ExitReason { PRICE PRODUCT SERVICE MARKET TECHNOLOGY POLITICAL }
enum Mendelow { MANAGE_CLOSELY KEEP_SATISFIED KEEP_INFORMED MONITOR }
enum RelationshipType {
  BUYS_FROM SUPPLIES DISTRIBUTES_FOR EMPLOYS MANAGES REFERS COVERS REGULATES PARTNERS_WITH KNOWS INFLUENCES
}
enum Level { BASIC REACTIVE ACCOUNTABLE PROACTIVE PARTNERSHIP }
enum Bond { FINANCIAL SOCIAL STRUCTURAL }
enum Basis { KINSHIP GEOGRAPHIC PROFESSIONAL CULTURAL INCIDENTAL }
enum EdgeDirection { OUTGOING INCOMING }
enum SortDirection { ASC DESC }
enum StakeholderSortField { ID NAME CREATED_AT POWER INTEREST }
enum RelationshipSort { ID LEVEL_DESC SINCE_ASC UPDATED_DESC }
enum StrengthComponentName {
  INTENSITY RECENCY RECIPROCITY SENTIMENT LEVEL TRUST COMMITMENT BONDS TENURE
}

input StakeholderFilter {
  kinds: [StakeholderKind!]
  markets: [Market!]
  search: String
  status: [CustomerStatus!]
  mendelow: [Mendelow!]
  includeArchived: Boolean! = false
}
input StakeholderOrder { field: StakeholderSortField! = ID direction: SortDirection! = ASC }
input RelationshipFilter { types: [RelationshipType!] direction: EdgeDirection minLevel: Level }

interface Node { id: ID! }

type PageInfo { hasPreviousPage: Boolean! hasNextPage: Boolean! startCursor: String endCursor: String }

interface Stakeholder {
${STAKEHOLDER_FIELDS}}

type MaskedStakeholder implements Stakeholder & Node {
${STAKEHOLDER_FIELDS}}

${['Customer', 'Supplier', 'Distributor', 'Employee', 'MediaOutlet', 'GovernmentBody']
  .map(
    (name) => `type ${name} implements Stakeholder & Node {
  id: ID!
  masked: Boolean!
  key: String!
  name: String!
  kind: StakeholderKind!
  primaryMarket: Market!
  markets: [Market!]!
  power: Float!
  interest: Float!
  mendelow: Mendelow!
  private: Boolean!
  createdAt: DateTime!
  updatedAt: DateTime!
  archivedAt: DateTime
  relationships(filter: RelationshipFilter, orderBy: RelationshipSort, first: Int, after: String): RelationshipConnection!
  ${
    {
      Customer: `status: CustomerStatus
  segment: String
  lifetimeValue: Float
  exitReason: ExitReason
  exitDate: NaiveDate
  relationshipManager: Employee`,
      Supplier: 'category: String',
      Distributor: `channel: String
  region: String`,
      Employee: `role: String
  department: String
  candidate: Boolean`,
      MediaOutlet: `outlet: String
  reach: Int`,
      GovernmentBody: `agency: String
  jurisdiction: String`,
    }[name]
  }
}`,
  )
  .join('\n')}

type StakeholderEdge { node: Stakeholder! cursor: String! }
type StakeholderConnection { pageInfo: PageInfo! edges: [StakeholderEdge!]! nodes: [Stakeholder!]! totalCount: Int! }

type StrengthComponent { name: StrengthComponentName! value: Float! weight: Float! contribution: Float! }
type RelationshipStrength {
  score: Float!
  components: [StrengthComponent!]!
  model: String!
  asOf: DateTime!
}

type Relationship implements Node {
  id: ID!
  type: RelationshipType!
  from: Stakeholder
  to: Stakeholder
  level: Level!
  levelRank: Int!
  bonds: [Bond!]!
  trust: Float
  commitment: Float
  since: DateTime!
  basis: Basis
  createdAt: DateTime!
  updatedAt: DateTime!
  strength(asOf: DateTime): RelationshipStrength!
}
type RelationshipEdge { node: Relationship! counterpart: Stakeholder direction: EdgeDirection! cursor: String! }
type RelationshipConnection {
  pageInfo: PageInfo!
  edges: [RelationshipEdge!]!
  nodes: [Relationship!]!
  totalCount: Int!
}

type Query {
  stakeholders(filter: StakeholderFilter, orderBy: StakeholderOrder, first: Int, after: String): StakeholderConnection!
  stakeholder(id: ID!): Stakeholder
  relationship(id: ID!): Relationship
}
`;

// ---------------------------------------------------------------------------------------------------------------
// Errors, in Stakegraph's shape (src/api/error.rs): a message and `extensions.code`.

function badInput(field, message) {
  return new GraphQLError(`${field}: ${message}`, { extensions: { code: 'BAD_USER_INPUT', field } });
}
const INVALID_CURSOR =
  'this cursor did not come from this list; pass the `cursor` of an edge (or `pageInfo.endCursor`) of the same list';
const DAMAGED_CURSOR = 'this cursor is damaged; start again without `after`';

function pageSize(first) {
  if (first == null) return Math.min(DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
  if (first < 0) return badInput('first', `${first} is negative; ask for 0 to ${MAX_PAGE_SIZE} items`);
  if (first > MAX_PAGE_SIZE) {
    return new GraphQLError(
      `${first} is more than the largest page of ${MAX_PAGE_SIZE}; ask for at most ${MAX_PAGE_SIZE} and page on with \`after\``,
      { extensions: { code: 'LIMIT_EXCEEDED', limit: 'max_page_size', field: 'first' } },
    );
  }
  return first;
}

// ---------------------------------------------------------------------------------------------------------------
// Global ids and cursors (src/api/ids.rs): base64url without padding of `Type:number` and `list|body`.

const b64 = (text) => Buffer.from(text, 'utf8').toString('base64url');
const unb64 = (text) => Buffer.from(text.trim(), 'base64url').toString('utf8');

const stakeholderGid = (id) => b64(`Stakeholder:${id}`);
const relationshipGid = (id) => b64(`Relationship:${id}`);

function decodeGid(id, field, wanted) {
  const text = unb64(id);
  const colon = text.indexOf(':');
  const kind = text.slice(0, colon);
  const number = text.slice(colon + 1);
  if (colon < 0 || !/^[+-]?\d+$/.test(number) || !['Stakeholder', 'Relationship', 'Interaction'].includes(kind)) {
    throw badInput(field, `'${id}' is not an id issued by this service; use the \`id\` field of a node you have queried`);
  }
  if (kind !== wanted) {
    const what = wanted.toLowerCase();
    throw badInput(field, `'${id}' is not a ${what} id; pass the id of a ${what}`);
  }
  return Number(number);
}

function decodeCursor(cursor, prefix) {
  const text = unb64(cursor);
  const bar = text.indexOf('|');
  if (bar < 0 || text.slice(0, bar) !== prefix) throw badInput('after', INVALID_CURSOR);
  return text.slice(bar + 1);
}

// The stakeholder listing's cursor: serde_json of `StakeholderCursor { sort, descending, id }` (src/store/mod.rs).
const SORT_NAMES = { ID: 'Id', NAME: 'Name', CREATED_AT: 'CreatedAt', POWER: 'Power', INTEREST: 'Interest' };
const SORT_COLUMNS = { Id: 'id', Name: 'name', CreatedAt: 'created_at', Power: 'power', Interest: 'interest' };
const stakeholderCursor = (sort, descending, id) =>
  b64(`stakeholders|${JSON.stringify({ sort, descending, id })}`);

const offsetCursor = (list, offset) => b64(`${list}|${offset}`);
function decodeOffsetCursor(list, cursor) {
  const body = decodeCursor(cursor, list);
  if (!/^\d+$/.test(body)) throw badInput('after', DAMAGED_CURSOR);
  return Number(body);
}

// ---------------------------------------------------------------------------------------------------------------
// Times: stored as milliseconds since the epoch; shown as chrono's `to_rfc3339()` (fraction of 0, 3, 6 or 9 digits,
// `+00:00`), which is what async-graphql writes for a `DateTime<Utc>`.

function rfc3339FromMs(ms) {
  const iso = new Date(ms).toISOString(); // 2026-12-02T01:35:00.275Z
  const whole = iso.slice(0, 19);
  const millis = ((ms % 1000) + 1000) % 1000;
  return millis === 0 ? `${whole}+00:00` : `${whole}.${String(millis).padStart(3, '0')}+00:00`;
}

// A time from a stored JSON record (serde's `to_rfc3339_opts(AutoSi, true)`: the same fraction, `Z`).
const rfc3339FromRecord = (text) => (text == null ? null : text.replace(/Z$/, '+00:00'));

// A `DateTime` argument: RFC 3339 text. Kept as milliseconds (Stakegraph's strength reads `timestamp_millis`)
// plus the text to show back in `asOf`.
function parseDateTime(text) {
  const match = /^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/.exec(text);
  if (!match) throw new TypeError(`invalid DateTime '${text}'`);
  const fraction = (match[3] ?? '').slice(1);
  const ms = Date.parse(`${match[1]}T${match[2]}${match[4].toUpperCase()}`) + Number((fraction + '000').slice(0, 3));
  if (Number.isNaN(ms)) throw new TypeError(`invalid DateTime '${text}'`);
  let nanos = (fraction + '000000000').slice(0, 9).replace(/^0+(?=.)/, '');
  nanos = Number(nanos);
  const whole = new Date(ms - (ms % 1000 + 1000) % 1000).toISOString().slice(0, 19);
  const digits = nanos === 0 ? '' : nanos % 1e6 === 0 ? 3 : nanos % 1e3 === 0 ? 6 : 9;
  const shown = digits === '' ? whole : `${whole}.${String(nanos).padStart(9, '0').slice(0, digits)}`;
  return { ms, text: `${shown}+00:00` };
}

const DateTimeScalar = new GraphQLScalarType({
  name: 'DateTime',
  serialize: (value) => value,
  parseValue: (value) => parseDateTime(String(value)),
  parseLiteral: (ast) => {
    if (ast.kind !== Kind.STRING) throw new TypeError('a DateTime is RFC 3339 text');
    return parseDateTime(ast.value);
  },
});

// ---------------------------------------------------------------------------------------------------------------
// The store: better-sqlite3, read-only, one prepared statement per batch shape. A batch of ids is bound as one
// JSON array and expanded with json_each, so a batch of any size is one query on one prepared statement.

// PEER_SQL_LOG=1 prints every statement run (to check the batching: a dashboard page is a constant number of them).
const db = new Database(DB_PATH, {
  readonly: true,
  fileMustExist: true,
  verbose: process.env.PEER_SQL_LOG ? (sql) => console.log(`sql: ${sql.replace(/\s+/g, ' ').slice(0, 100)}`) : undefined,
});
db.pragma('query_only = true');
db.pragma('cache_size = -65536');
db.pragma('mmap_size = 268435456');

const STAKEHOLDER_COLUMNS =
  'id, key, kind, name, status, markets, power, interest, private, created_at, updated_at, archived_at, record';
const RELATIONSHIP_COLUMNS =
  'id, from_id, to_id, type, level, bonds, trust, commitment, since, basis, created_at, updated_at, ' +
  'sum_weighted, sum_inbound, sum_outbound, sum_sentiment, last_at';

const statements = {
  stakeholdersById: db.prepare(
    `SELECT ${STAKEHOLDER_COLUMNS} FROM stakeholder WHERE id IN (SELECT value FROM json_each(?))`,
  ),
  // Both directions, each relationship once, in id order (src/store/sqlite/mod.rs `relationships_of`).
  relationshipsOf: db.prepare(
    `SELECT ${RELATIONSHIP_COLUMNS} FROM relationship WHERE from_id IN (SELECT value FROM json_each(?1))
     UNION
     SELECT ${RELATIONSHIP_COLUMNS} FROM relationship WHERE to_id IN (SELECT value FROM json_each(?1))
     ORDER BY id`,
  ),
  relationshipsById: db.prepare(
    `SELECT ${RELATIONSHIP_COLUMNS} FROM relationship WHERE id IN (SELECT value FROM json_each(?))`,
  ),
  histories: db.prepare(
    `SELECT relationship_id, at, channel, direction, sentiment FROM interaction
     WHERE relationship_id IN (SELECT value FROM json_each(?)) ORDER BY relationship_id, at, id`,
  ),
  cursorRow: db.prepare('SELECT private FROM stakeholder WHERE id = ?'),
};
// Listing statements depend on the filter's shape; prepared once per shape and kept.
const listingStatements = new Map();
function prepared(sql) {
  let statement = listingStatements.get(sql);
  if (!statement) {
    statement = db.prepare(sql);
    listingStatements.set(sql, statement);
  }
  return statement;
}

const KINDS = ['CUSTOMER', 'SUPPLIER', 'DISTRIBUTOR', 'EMPLOYEE', 'MEDIA', 'GOVERNMENT'];
const TYPE_OF_KIND = {
  CUSTOMER: 'Customer',
  SUPPLIER: 'Supplier',
  DISTRIBUTOR: 'Distributor',
  EMPLOYEE: 'Employee',
  MEDIA: 'MediaOutlet',
  GOVERNMENT: 'GovernmentBody',
};
const MARKETS = ['CUSTOMER', 'REFERRAL', 'SUPPLIER', 'INFLUENCE', 'RECRUITMENT', 'INTERNAL'];
const LEVELS = ['BASIC', 'REACTIVE', 'ACCOUNTABLE', 'PROACTIVE', 'PARTNERSHIP'];
const BONDS = ['FINANCIAL', 'SOCIAL', 'STRUCTURAL'];
const CHANNELS = ['MEETING', 'EVENT', 'CALL', 'PURCHASE', 'SUPPORT', 'MESSAGE', 'EMAIL', 'SOCIAL', 'PRESS', 'FILING'];

// A stakeholder row; the JSON record (kind details, exact times) is parsed only when a field needs it.
class StakeholderRow {
  constructor(row) {
    Object.assign(this, row);
    this.private = row.private !== 0;
    this._record = undefined;
  }
  get record() {
    if (this._record === undefined) this._record = JSON.parse(this.record_text);
    return this._record;
  }
  get details() {
    return this.record.details;
  }
}
function stakeholderRow(row) {
  const { record, ...columns } = row;
  const result = new StakeholderRow(columns);
  result.record_text = record;
  return result;
}

function bitsToList(bits, names) {
  const list = [];
  for (let index = 0; index < names.length; index += 1) if (bits & (1 << index)) list.push(names[index]);
  return list;
}

// A relationship row with its decayed sums (src/store/sqlite/rows.rs `sums`).
function relationshipRow(row) {
  const last = row.last_at == null ? null : row.last_at / 1000;
  return {
    id: row.id,
    from: row.from_id,
    to: row.to_id,
    type: row.type,
    level: row.level,
    bonds: row.bonds & 0b111,
    trust: row.trust,
    commitment: row.commitment,
    since: row.since,
    basis: row.basis,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    sums: {
      weighted: row.sum_weighted,
      inbound: row.sum_inbound,
      outbound: row.sum_outbound,
      sentiment: row.sum_sentiment,
      tRef: last ?? 0,
      last,
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// DataLoaders, one set per request.

function createLoaders() {
  const stakeholders = new DataLoader(async (ids) => {
    const found = new Map();
    for (const row of statements.stakeholdersById.all(JSON.stringify(ids))) found.set(row.id, stakeholderRow(row));
    return ids.map((id) => found.get(id) ?? null);
  });
  // Every relationship of each stakeholder, in id order; Stakegraph's `by_end` puts a relationship in the list of
  // each end asked for (`to` first, then `from`).
  const relationshipsOf = new DataLoader(async (ids) => {
    const lists = new Map(ids.map((id) => [id, []]));
    for (const row of statements.relationshipsOf.all({ 1: JSON.stringify(ids) })) {
      const relationship = relationshipRow(row);
      lists.get(relationship.to)?.push(relationship);
      lists.get(relationship.from)?.push(relationship);
    }
    return ids.map((id) => lists.get(id));
  });
  const relationships = new DataLoader(async (ids) => {
    const found = new Map();
    for (const row of statements.relationshipsById.all(JSON.stringify(ids))) found.set(row.id, relationshipRow(row));
    return ids.map((id) => found.get(id) ?? null);
  });
  const histories = new DataLoader(async (ids) => {
    const lists = new Map(ids.map((id) => [id, []]));
    for (const row of statements.histories.all(JSON.stringify(ids))) lists.get(row.relationship_id).push(row);
    return ids.map((id) => lists.get(id));
  });
  return { stakeholders, relationshipsOf, relationships, histories };
}

// ---------------------------------------------------------------------------------------------------------------
// Privacy (README "Privacy", src/api/relationships.rs `visible`): an anonymous caller sees private stakeholders
// masked, and a relationship only when both ends are public (an end that cannot be found counts as hidden).

const SEES_PRIVATE = false;

// The GraphQL value of a stakeholder for this caller.
function view(row) {
  if (row == null) return null;
  if (row.private && !SEES_PRIVATE) return { masked: true, id: row.id };
  return row;
}

async function visible(loaders, relationships) {
  if (SEES_PRIVATE || relationships.length === 0) return relationships;
  const ends = [...new Set(relationships.flatMap((relationship) => [relationship.from, relationship.to]))];
  const rows = await loaders.stakeholders.loadMany(ends);
  const publicEnds = new Set();
  rows.forEach((row, index) => {
    if (row && !(row instanceof Error) && !row.private) publicEnds.add(ends[index]);
  });
  return relationships.filter((relationship) => publicEnds.has(relationship.from) && publicEnds.has(relationship.to));
}

async function relationshipsOf(loaders, stakeholder) {
  return visible(loaders, await loaders.relationshipsOf.load(stakeholder));
}

async function loadStakeholder(loaders, id) {
  return view(await loaders.stakeholders.load(id));
}

// ---------------------------------------------------------------------------------------------------------------
// Relationship strength (DESIGN.md §3, src/domain/strength.rs), the same operations in the same order.

const DAY = 86_400;
const YEAR_DAYS = 365.25;
const MODEL = {
  version: 'strength-v1',
  weights: {
    intensity: 0.2,
    recency: 0.15,
    reciprocity: 0.1,
    sentiment: 0.1,
    level: 0.15,
    trust: 0.1,
    commitment: 0.1,
    bonds: 0.05,
    tenure: 0.05,
  },
  halfLifeDays: 90,
  kappa: 4,
  channelWeights: [1.0, 0.8, 0.6, 0.7, 0.5, 0.3, 0.3, 0.2, 0.4, 0.3],
};
const decay = (seconds) => 2 ** (-seconds / (MODEL.halfLifeDays * DAY));

function popcount(bits) {
  let count = 0;
  for (let rest = bits; rest; rest &= rest - 1) count += 1;
  return count;
}

// Whether the stored sums can be read at `atSeconds` (not before the last interaction they hold).
const covers = (sums, atSeconds) => sums.last == null || atSeconds >= sums.tRef;

// `DecayedSums::from_history`: the sums of the interactions at or before `atMs`, replayed in (at, id) order.
function sumsFromHistory(history, atMs) {
  const sums = { weighted: 0, inbound: 0, outbound: 0, sentiment: 0, tRef: 0, last: null };
  for (const interaction of history) {
    if (interaction.at > atMs) continue;
    const t = interaction.at / 1000;
    let factor;
    if (sums.last != null && t < sums.tRef) {
      factor = decay(sums.tRef - t);
    } else if (sums.last != null) {
      const shift = decay(t - sums.tRef);
      sums.weighted *= shift;
      sums.inbound *= shift;
      sums.outbound *= shift;
      sums.sentiment *= shift;
      sums.tRef = t;
      factor = 1;
    } else {
      sums.tRef = t;
      factor = 1;
    }
    sums.weighted += factor * MODEL.channelWeights[CHANNELS.indexOf(interaction.channel)];
    if (interaction.direction === 'INBOUND') sums.inbound += factor;
    else sums.outbound += factor;
    sums.sentiment += factor * interaction.sentiment;
    sums.last = sums.last == null ? t : Math.max(sums.last, t);
  }
  return sums;
}

// `StrengthModel::evaluate`: the components present and the score, at `t` seconds since the epoch.
function evaluate(relationship, sums, t) {
  const weights = MODEL.weights;
  const parts = [];
  if (sums.last != null) {
    const factor = decay(Math.max(t - sums.tRef, 0));
    const weighted = sums.weighted * factor;
    const inbound = sums.inbound * factor;
    const outbound = sums.outbound * factor;
    const sentiment = sums.sentiment * factor;
    const total = inbound + outbound;
    parts.push(['INTENSITY', 1 - Math.exp(-weighted / MODEL.kappa), weights.intensity]);
    parts.push(['RECENCY', decay(Math.max(t - sums.last, 0)), weights.recency]);
    parts.push(['RECIPROCITY', total > 0 ? 1 - Math.abs(inbound - outbound) / total : 0, weights.reciprocity]);
    const mean = total > 0 ? sentiment / total : 0;
    parts.push(['SENTIMENT', (1 + mean) / 2, weights.sentiment]);
  } else {
    parts.push(['INTENSITY', 0, weights.intensity]);
    parts.push(['RECENCY', 0, weights.recency]);
    parts.push(['RECIPROCITY', 0, weights.reciprocity]);
    parts.push(['SENTIMENT', 0.5, weights.sentiment]);
  }
  parts.push(['LEVEL', Math.max(relationship.level - 1, 0) / 4, weights.level]);
  if (relationship.trust != null) parts.push(['TRUST', relationship.trust, weights.trust]);
  if (relationship.commitment != null) parts.push(['COMMITMENT', relationship.commitment, weights.commitment]);
  parts.push(['BONDS', popcount(relationship.bonds) / 3, weights.bonds]);
  const years = Math.max((t - relationship.since / 1000) / DAY / YEAR_DAYS, 0);
  parts.push(['TENURE', 1 - 2 ** (-years / 2), weights.tenure]);
  let totalWeight = 0;
  for (const part of parts) totalWeight += part[2];
  let score = 0;
  const components = parts.map(([name, value, weight]) => {
    const contribution = totalWeight > 0 ? (weight * value) / totalWeight : 0;
    score += contribution;
    return { name, value, weight, contribution };
  });
  return { score, components };
}

async function strength(loaders, relationship, asOf) {
  // Default: now (Stakegraph: `Utc::now()`, read at millisecond precision).
  const at = asOf ?? { ms: Date.now(), text: null };
  const t = at.ms / 1000;
  let sums = relationship.sums;
  if (!covers(sums, t)) sums = sumsFromHistory(await loaders.histories.load(relationship.id), at.ms);
  const { score, components } = evaluate(relationship, sums, t);
  return { score, components, model: MODEL.version, asOf: at.text ?? rfc3339FromMs(at.ms) };
}

// ---------------------------------------------------------------------------------------------------------------
// Listings (src/api/query.rs `store_query`, src/store/sqlite/mod.rs `list_stakeholders`).

function likePattern(search) {
  return `%${search.replaceAll('\\', '\\\\').replaceAll('%', '\\%').replaceAll('_', '\\_')}%`;
}

const MENDELOW_CONDITIONS = {
  MANAGE_CLOSELY: '(power >= 0.5 AND interest >= 0.5)',
  KEEP_SATISFIED: '(power >= 0.5 AND interest < 0.5)',
  KEEP_INFORMED: '(power < 0.5 AND interest >= 0.5)',
  MONITOR: '(power < 0.5 AND interest < 0.5)',
};

function listStakeholders(args) {
  const first = pageSize(args.first);
  if (first instanceof Error) throw first;
  const filter = args.filter ?? {};
  const order = args.orderBy ?? {};
  const sort = SORT_NAMES[order.field ?? 'ID'];
  const descending = (order.direction ?? 'ASC') === 'DESC';
  let search = filter.search == null ? null : filter.search.trim();
  if (search != null && [...search].length > 200) {
    throw badInput('filter.search', 'is longer than 200 characters; search for a shorter part of the name or key');
  }
  if (search === '') search = null;
  let after = null;
  if (args.after != null) {
    try {
      after = JSON.parse(decodeCursor(args.after, 'stakeholders'));
    } catch (error) {
      if (error instanceof GraphQLError) throw error;
      throw badInput('after', 'this cursor is damaged; start again without `after`');
    }
    if (after.sort !== sort || after.descending !== descending) {
      throw badInput(
        'after',
        'the cursor belongs to a listing with another order; pass the same orderBy as the page it came from',
      );
    }
    const row = statements.cursorRow.get(after.id);
    if (!row || (!SEES_PRIVATE && row.private !== 0)) throw badInput('after', INVALID_CURSOR);
  }

  const conditions = [];
  const values = [];
  const bind = (value) => {
    values.push(value);
    return `?${values.length}`;
  };
  if (!filter.includeArchived) conditions.push('archived_at IS NULL');
  if (filter.kinds?.length) conditions.push(`kind IN (${[...new Set(filter.kinds)].map((k) => `'${k}'`).join(', ')})`);
  if (filter.markets?.length) {
    const bits = filter.markets.reduce((set, market) => set | (1 << MARKETS.indexOf(market)), 0);
    conditions.push(`(markets & ${bind(bits)}) != 0`);
  }
  if (filter.status?.length) conditions.push(`status IN (${filter.status.map((s) => `'${s}'`).join(', ')})`);
  if (filter.mendelow?.length) conditions.push(`(${filter.mendelow.map((m) => MENDELOW_CONDITIONS[m]).join(' OR ')})`);
  if (search != null) {
    const slot = bind(likePattern(search));
    conditions.push(`(name LIKE ${slot} ESCAPE '\\' OR key LIKE ${slot} ESCAPE '\\')`);
  }
  if (!SEES_PRIVATE) conditions.push('private = 0');

  const whereOf = (list) => (list.length ? `WHERE ${list.join(' AND ')}` : '');
  const countValues = values.slice();
  const countSql = `SELECT COUNT(*) AS n FROM stakeholder ${whereOf(conditions)}`;

  const column = SORT_COLUMNS[sort];
  const [compare, direction] = descending ? ['<', 'DESC'] : ['>', 'ASC'];
  if (after) {
    const idSlot = bind(after.id);
    conditions.push(
      sort === 'Id'
        ? `id ${compare} ${idSlot}`
        : `(${column} ${compare} (SELECT ${column} FROM stakeholder WHERE id = ${idSlot}) OR (${column} = ` +
            `(SELECT ${column} FROM stakeholder WHERE id = ${idSlot}) AND id ${compare} ${idSlot}))`,
    );
  }
  const limitSlot = bind(first + 1);
  const orderClause = sort === 'Id' ? `id ${direction}` : `${column} ${direction}, id ${direction}`;
  const sql = `SELECT ${STAKEHOLDER_COLUMNS} FROM stakeholder ${whereOf(conditions)} ORDER BY ${orderClause} LIMIT ${limitSlot}`;
  const rows = prepared(sql).all(numbered(values));
  const hasNextPage = rows.length > first;
  const edges = rows.slice(0, first).map((row) => ({
    cursor: stakeholderCursor(sort, descending, row.id),
    node: view(stakeholderRow(row)),
  }));
  return {
    edges,
    pageInfo: pageInfo(after != null, hasNextPage, edges),
    // Counted only when asked for: graphql-js calls the function only if `totalCount` is selected.
    totalCount: () => prepared(countSql).get(numbered(countValues)).n,
  };
}

// Binds `?1`, `?2`, ... (better-sqlite3 takes numbered parameters as an object keyed by number).
const numbered = (values) => Object.fromEntries(values.map((value, index) => [index + 1, value]));

function pageInfo(hasPreviousPage, hasNextPage, edges) {
  return {
    hasPreviousPage,
    hasNextPage,
    startCursor: edges.length ? edges[0].cursor : null,
    endCursor: edges.length ? edges[edges.length - 1].cursor : null,
  };
}

// Relationship ordering (src/api/relationships.rs `sort_relationships`); ties to the lower id.
const known = (value) => (value == null ? -1 : value);
const RELATIONSHIP_ORDERS = {
  ID: (a, b) => a.id - b.id,
  LEVEL_DESC: (a, b) =>
    b.level - a.level ||
    known(b.trust) - known(a.trust) ||
    known(b.commitment) - known(a.commitment) ||
    a.id - b.id,
  SINCE_ASC: (a, b) => a.since - b.since || a.id - b.id,
  UPDATED_DESC: (a, b) => b.updatedAt - a.updatedAt || a.id - b.id,
};

async function relationshipConnection(loaders, stakeholder, args) {
  const first = pageSize(args.first);
  if (first instanceof Error) throw first;
  const filter = args.filter ?? {};
  const all = await relationshipsOf(loaders, stakeholder);
  const minLevel = filter.minLevel == null ? null : LEVELS.indexOf(filter.minLevel) + 1;
  const list = all.filter(
    (relationship) =>
      (filter.types == null || filter.types.includes(relationship.type)) &&
      (filter.direction == null ||
        (relationship.from === stakeholder ? 'OUTGOING' : 'INCOMING') === filter.direction) &&
      (minLevel == null || relationship.level >= minLevel),
  );
  list.sort(RELATIONSHIP_ORDERS[args.orderBy ?? 'ID']);
  const start = Math.min(args.after == null ? 0 : decodeOffsetCursor('relationships', args.after) + 1, list.length);
  const end = Math.min(start + first, list.length);
  const edges = [];
  for (let index = start; index < end; index += 1) {
    const relationship = list[index];
    edges.push({
      cursor: offsetCursor('relationships', index),
      node: relationship,
      counterpart: relationship.to === stakeholder ? relationship.from : relationship.to,
      direction: relationship.from === stakeholder ? 'OUTGOING' : 'INCOMING',
    });
  }
  return { edges, pageInfo: pageInfo(start > 0, end < list.length, edges), totalCount: list.length };
}

// ---------------------------------------------------------------------------------------------------------------
// Resolvers

const commonStakeholderFields = {
  id: (row) => stakeholderGid(row.id),
  masked: () => false,
  key: (row) => row.key,
  name: (row) => row.name,
  kind: (row) => row.kind,
  primaryMarket: (row) => primaryMarket(row),
  markets: (row) => bitsToList(row.markets, MARKETS),
  power: (row) => row.power,
  interest: (row) => row.interest,
  mendelow: (row) => mendelow(row.power, row.interest),
  private: (row) => row.private,
  createdAt: (row) => rfc3339FromRecord(row.record.created_at),
  updatedAt: (row) => rfc3339FromRecord(row.record.updated_at),
  archivedAt: (row) => rfc3339FromRecord(row.record.archived_at),
  relationships: (row, args, { loaders }) => relationshipConnection(loaders, row.id, args),
};

function primaryMarket(row) {
  switch (row.kind) {
    case 'CUSTOMER':
      return 'CUSTOMER';
    case 'SUPPLIER':
      return 'SUPPLIER';
    case 'DISTRIBUTOR':
      return 'REFERRAL';
    case 'EMPLOYEE':
      return row.details.candidate ? 'RECRUITMENT' : 'INTERNAL';
    default:
      return 'INFLUENCE';
  }
}

function mendelow(power, interest) {
  if (power >= 0.5) return interest >= 0.5 ? 'MANAGE_CLOSELY' : 'KEEP_SATISFIED';
  return interest >= 0.5 ? 'KEEP_INFORMED' : 'MONITOR';
}

const detail = (name) => (row) => row.details[name] ?? null;

const resolvers = {
  Query: {
    stakeholders: (_, args) => listStakeholders(args),
    stakeholder: (_, { id }, { loaders }) => loadStakeholder(loaders, decodeGid(id, 'id', 'Stakeholder')),
    relationship: async (_, { id }, { loaders }) => {
      const found = await loaders.relationships.load(decodeGid(id, 'id', 'Relationship'));
      return found == null ? null : ((await visible(loaders, [found]))[0] ?? null);
    },
  },
  Stakeholder: {
    __resolveType: (value) => (value.masked === true ? 'MaskedStakeholder' : TYPE_OF_KIND[value.kind]),
  },
  Node: {
    __resolveType: (value) =>
      value.masked === true ? 'MaskedStakeholder' : value.kind ? TYPE_OF_KIND[value.kind] : 'Relationship',
  },
  MaskedStakeholder: {
    id: (masked) => stakeholderGid(masked.id),
    masked: () => true,
    relationships: () => null,
  },
  Customer: {
    ...commonStakeholderFields,
    status: (row) => row.details.status ?? null,
    segment: detail('segment'),
    lifetimeValue: detail('lifetime_value'),
    exitReason: (row) => row.details.exit?.reason ?? null,
    exitDate: (row) => row.details.exit?.date ?? null,
    // The employee on the customer's oldest MANAGES relationship the caller may see.
    relationshipManager: async (row, _args, { loaders }) => {
      const manages = (await relationshipsOf(loaders, row.id)).find(
        (relationship) => relationship.type === 'MANAGES' && relationship.to === row.id,
      );
      if (!manages) return null;
      const manager = await loadStakeholder(loaders, manages.from);
      return manager && manager.masked !== true && manager.kind === 'EMPLOYEE' ? manager : null;
    },
  },
  Supplier: { ...commonStakeholderFields, category: detail('category') },
  Distributor: { ...commonStakeholderFields, channel: detail('channel'), region: detail('region') },
  Employee: {
    ...commonStakeholderFields,
    role: detail('role'),
    department: detail('department'),
    candidate: (row) => Boolean(row.details.candidate),
  },
  MediaOutlet: { ...commonStakeholderFields, outlet: detail('outlet'), reach: detail('reach') },
  GovernmentBody: { ...commonStakeholderFields, agency: detail('agency'), jurisdiction: detail('jurisdiction') },
  StakeholderConnection: {
    nodes: (connection) => connection.edges.map((edge) => edge.node),
  },
  RelationshipConnection: {
    nodes: (connection) => connection.edges.map((edge) => edge.node),
  },
  RelationshipEdge: {
    counterpart: (edge, _args, { loaders }) => loadStakeholder(loaders, edge.counterpart),
  },
  Relationship: {
    id: (relationship) => relationshipGid(relationship.id),
    from: (relationship, _args, { loaders }) => loadStakeholder(loaders, relationship.from),
    to: (relationship, _args, { loaders }) => loadStakeholder(loaders, relationship.to),
    level: (relationship) => LEVELS[relationship.level - 1],
    levelRank: (relationship) => relationship.level,
    bonds: (relationship) => bitsToList(relationship.bonds, BONDS),
    since: (relationship) => rfc3339FromMs(relationship.since),
    createdAt: (relationship) => rfc3339FromMs(relationship.createdAt),
    updatedAt: (relationship) => rfc3339FromMs(relationship.updatedAt),
    strength: (relationship, { asOf }, { loaders }) => strength(loaders, relationship, asOf),
  },
};

// Attaches the resolvers to the SDL schema (what graphql-tools' makeExecutableSchema does, without the dependency).
function executableSchema(sdl, map) {
  const schema = buildSchema(sdl);
  for (const [typeName, fields] of Object.entries(map)) {
    const type = schema.getType(typeName);
    for (const [fieldName, resolver] of Object.entries(fields)) {
      if (fieldName === '__resolveType') type.resolveType = resolver;
      else type.getFields()[fieldName].resolve = resolver;
    }
  }
  schema.getTypeMap().DateTime.serialize = DateTimeScalar.serialize;
  schema.getTypeMap().DateTime.parseValue = DateTimeScalar.parseValue;
  schema.getTypeMap().DateTime.parseLiteral = DateTimeScalar.parseLiteral;
  return schema;
}

const schema = executableSchema(typeDefs, resolvers);

// ---------------------------------------------------------------------------------------------------------------
// HTTP

const graphqlHandler = createHandler({
  schema,
  context: () => ({ loaders: createLoaders() }),
});

const server = http.createServer((req, res) => {
  if (req.url === '/graphql' || req.url.startsWith('/graphql?')) {
    graphqlHandler(req, res).catch((error) => {
      console.error(error);
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  } else if (req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
  } else {
    res.writeHead(404).end();
  }
});
server.keepAliveTimeout = 75_000;

const colon = LISTEN.lastIndexOf(':');
const host = LISTEN.slice(0, colon) || '127.0.0.1';
const port = Number(LISTEN.slice(colon + 1));
server.listen(port, host, () => {
  const address = server.address();
  console.log(`graphql-js peer serving ${DB_PATH} at http://${address.address}:${address.port}/graphql`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    server.close();
    db.close();
    process.exit(0);
  });
}
