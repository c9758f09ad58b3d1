//! An immutable, compact projection of the live graph (ARCHITECTURE.md): stakeholders as dense indices (in id
//! order), relationships as compressed sparse rows in both directions, each with its strength inputs and its
//! strength as of the snapshot's clock.
//!
//! Layout, per relationship (SoA, 60 bytes): target (4), strength (4), the in-adjacency's source and edge (8),
//! id + type + level + bonds packed in 8, last interaction (8), four decayed sums as f32 (16), trust and
//! commitment as f32 (8), start in minutes (4). Strengths are single precision: analytics read them as such and
//! the export writes exactly these values, so peers load the same graph.
//!
//! A new snapshot is derived from the previous one and the rows that changed, sharing everything else with it:
//! - the adjacency of the last *compaction* (the base) is never copied; relationships added since are a delta
//!   beside it (each stakeholder's added edges, in both directions), so adding one costs O(its ends' degrees);
//! - stakeholders, strengths and packed ids live in copy-on-write chunks, so a new stakeholder (ids only grow) or
//!   a changed strength copies one chunk, not the array;
//! - the inputs of relationships changed since the compaction are a persistent map beside the base's.
//!
//! When the delta reaches a quarter of the base (or a refresh re-evaluates every strength anyway), the next
//! snapshot is compacted: laid out again as one base, in O(n + m), so additions cost O(degree) amortised.
//! Archiving a stakeholder (or one whose id falls between existing ones) renumbers nodes and lays out again.

use crate::domain::strength::{seconds, DecayedSums, Standing, StrengthModel, TREND_DAYS};
use crate::domain::{
    BondSet, Level, MarketSet, Relationship, RelationshipId, RelationshipType, StakeholderId, StakeholderKind,
};
use crate::store::{GraphScan, NodeRow};
use chrono::{DateTime, Utc};
use std::ops::Range;
use std::sync::Arc;

/// Node flag: the stakeholder is private.
const PRIVATE: u8 = 1;
/// Node flag: edges leaving it were added since the last compaction.
const ADDED_OUT: u8 = 2;
/// Node flag: edges arriving at it were added since the last compaction.
const ADDED_IN: u8 = 4;

/// Relationship ids must fit in the 48 bits the packed edge word leaves for them.
const MAX_ID: i64 = (1 << 48) - 1;

/// The delta (added edges plus changed inputs) that makes the next snapshot a compacted one: a quarter of the
/// base's edges, and at least this many.
const COMPACT_AT_LEAST: usize = 16_384;

/// Why a projection cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// A relationship id does not fit the packed layout.
    #[error("relationship id {0} is above the projection's limit of 2^48 - 1")]
    IdTooLarge(i64),
}

/// Stakeholders, in id order: the base's first, then those appended since.
#[derive(Debug, Clone, Default)]
struct Nodes {
    ids: Chunked<i64>,
    kinds: Chunked<u8>,
    markets: Chunked<u8>,
    /// [`PRIVATE`], [`ADDED_OUT`], [`ADDED_IN`].
    flags: Chunked<u8>,
}

impl Nodes {
    fn push(&mut self, row: &NodeRow) {
        self.ids.push(row.id.0);
        self.kinds.push(row.kind as u8);
        self.markets.push(row.markets.bits());
        self.flags.push(if row.private { PRIVATE } else { 0 });
    }

    /// Sets the attributes of `node` from `row` (copying a chunk only if one changes).
    fn update(&mut self, node: usize, row: &NodeRow) {
        if self.kinds[node] != row.kind as u8 {
            self.kinds.set(node, row.kind as u8);
        }
        if self.markets[node] != row.markets.bits() {
            self.markets.set(node, row.markets.bits());
        }
        let flags = (self.flags[node] & !PRIVATE) | if row.private { PRIVATE } else { 0 };
        self.flags.mark(node, flags);
    }

    fn row(&self, node: usize) -> NodeRow {
        NodeRow {
            id: StakeholderId(self.ids[node]),
            kind: StakeholderKind::ALL[usize::from(self.kinds[node])],
            markets: MarketSet::from_bits(self.markets[node]),
            private: self.flags[node] & PRIVATE != 0,
        }
    }

    fn len(&self) -> usize {
        self.ids.len()
    }
}

/// Who is connected to whom, in both directions, as of the last compaction.
#[derive(Debug, Default)]
struct Base {
    /// Out-edges of node `v` are `out_offsets[v]..out_offsets[v + 1]` (nodes appended since have none here).
    out_offsets: Vec<u32>,
    /// In-adjacency entries of node `v` are `in_offsets[v]..in_offsets[v + 1]`.
    in_offsets: Vec<u32>,
    /// Target of each edge (edges are ordered by source, then relationship id).
    targets: Vec<u32>,
    /// Source of each in-adjacency entry (entries are ordered by target, then edge).
    in_sources: Vec<u32>,
    /// Edge of each in-adjacency entry.
    in_edges: Vec<u32>,
    /// The strength inputs of each edge ([`Inputs`], field by field).
    last: Vec<f64>,
    sums: Vec<[f32; 4]>,
    trust_commitment: Vec<[f32; 2]>,
    since: Vec<i32>,
}

impl Base {
    fn edges(&self) -> usize {
        self.targets.len()
    }

    #[inline]
    fn out_range(&self, node: u32) -> Range<usize> {
        match self.out_offsets.get(node as usize + 1) {
            Some(end) => self.out_offsets[node as usize] as usize..*end as usize,
            None => 0..0,
        }
    }

    #[inline]
    fn in_range(&self, node: u32) -> Range<usize> {
        match self.in_offsets.get(node as usize + 1) {
            Some(end) => self.in_offsets[node as usize] as usize..*end as usize,
            None => 0..0,
        }
    }

    fn inputs(&self, edge: usize) -> Inputs {
        Inputs {
            last: self.last[edge],
            sums: self.sums[edge],
            trust_commitment: self.trust_commitment[edge],
            since: self.since[edge],
        }
    }

    fn heap_bytes(&self) -> usize {
        fn bytes<T>(items: &Vec<T>) -> usize {
            items.capacity() * std::mem::size_of::<T>()
        }
        bytes(&self.out_offsets)
            + bytes(&self.in_offsets)
            + bytes(&self.targets)
            + bytes(&self.in_sources)
            + bytes(&self.in_edges)
            + bytes(&self.last)
            + bytes(&self.sums)
            + bytes(&self.trust_commitment)
            + bytes(&self.since)
    }
}

/// Edges added since the last compaction: edge `base.edges() + i` is the `i`-th.
#[derive(Debug, Clone, Default)]
struct Added {
    /// (source, target) of each.
    ends: Chunked<(u32, u32)>,
    /// The added edges leaving a node.
    out: imbl::HashMap<u32, Arc<[u32]>>,
    /// The added edges arriving at a node, as (source, edge).
    into: imbl::HashMap<u32, Arc<[(u32, u32)]>>,
}

/// What strength is computed from, besides the packed word.
#[derive(Debug, Clone, Copy)]
struct Inputs {
    /// Last interaction in seconds since the epoch; NaN when there is none.
    last: f64,
    /// Decayed sums (weighted, inbound, outbound, sentiment), referred to `last`.
    sums: [f32; 4],
    /// Trust and commitment; NaN when unknown.
    trust_commitment: [f32; 2],
    /// Start of the relationship, in minutes since the epoch.
    since: i32,
}

/// Seconds the past strength ([`Snapshot::past_strength`]) lies before the snapshot's clock.
const TREND_SECONDS: f64 = (TREND_DAYS * 86_400) as f64;

impl Inputs {
    /// Whether a strength at `at` (seconds) can be read from these inputs: no interaction is later.
    fn covers(&self, at: f64) -> bool {
        self.last.is_nan() || self.last <= at
    }

    /// The strength [`TREND_DAYS`] before `at` (seconds) of an edge with these inputs, NaN when not covered.
    fn past(&self, model: &StrengthModel, packed: u64, at: f64) -> f32 {
        let before = at - TREND_SECONDS;
        if self.covers(before) {
            score(model, packed, self, before)
        } else {
            f32::NAN
        }
    }

    /// Whether `self` and `other` hold the same bits (NaN, for unknown, equals itself here).
    fn same(&self, other: &Inputs) -> bool {
        let bits = |inputs: &Inputs| {
            (
                inputs.last.to_bits(),
                inputs.sums.map(f32::to_bits),
                inputs.trust_commitment.map(f32::to_bits),
                inputs.since,
            )
        };
        bits(self) == bits(other)
    }
}

/// log2 of the items in one chunk.
const CHUNK_BITS: usize = 12;
const CHUNK: usize = 1 << CHUNK_BITS;

/// An array in shared chunks of [`CHUNK`] items (every chunk full but the last): cloning it copies pointers,
/// changing or appending an item copies its chunk only if another snapshot shares it.
#[derive(Debug, Clone)]
struct Chunked<T> {
    chunks: Vec<Arc<Vec<T>>>,
    len: usize,
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Self { chunks: Vec::new(), len: 0 }
    }
}

impl<T: Copy> Chunked<T> {
    fn from_vec(items: Vec<T>) -> Self {
        let len = items.len();
        let chunks = items.chunks(CHUNK).map(|chunk| Arc::new(chunk.to_vec())).collect();
        Self { chunks, len }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn set(&mut self, index: usize, value: T) {
        Arc::make_mut(&mut self.chunks[index >> CHUNK_BITS])[index & (CHUNK - 1)] = value;
    }

    fn push(&mut self, value: T) {
        match self.chunks.last_mut() {
            Some(last) if last.len() < CHUNK => Arc::make_mut(last).push(value),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(value);
                self.chunks.push(Arc::new(chunk));
            }
        }
        self.len += 1;
    }

    fn heap_bytes(&self) -> usize {
        self.chunks.capacity() * std::mem::size_of::<Arc<Vec<T>>>()
            + self.chunks.iter().map(|chunk| chunk.capacity() * std::mem::size_of::<T>()).sum::<usize>()
    }
}

impl<T: Copy + PartialEq> Chunked<T> {
    /// Sets item `index` to `value` unless it already is.
    fn mark(&mut self, index: usize, value: T) {
        if self[index] != value {
            self.set(index, value);
        }
    }
}

impl Chunked<f32> {
    /// Sets item `index` to `value` unless it already holds the same bits (NaN included).
    fn mark_bits(&mut self, index: usize, value: f32) {
        if self[index].to_bits() != value.to_bits() {
            self.set(index, value);
        }
    }
}

impl<T: Copy + Ord> Chunked<T> {
    /// Where `value` is (or would go), in an array sorted ascending.
    fn binary_search(&self, value: T) -> Result<usize, usize> {
        let after = self.chunks.partition_point(|chunk| chunk[0] <= value);
        let Some(chunk) = after.checked_sub(1) else { return Err(0) };
        let base = chunk << CHUNK_BITS;
        self.chunks[chunk].binary_search(&value).map(|index| base + index).map_err(|index| base + index)
    }
}

impl<T> std::ops::Index<usize> for Chunked<T> {
    type Output = T;

    #[inline]
    fn index(&self, index: usize) -> &T {
        &self.chunks[index >> CHUNK_BITS][index & (CHUNK - 1)]
    }
}

/// One relationship in compact form, for assembling.
#[derive(Debug, Clone, Copy)]
struct EdgeRecord {
    source: u32,
    target: u32,
    packed: u64,
    inputs: Inputs,
    /// Its strength at the snapshot's clock; NaN: to be evaluated.
    strength: f32,
    /// Its strength [`TREND_DAYS`] earlier; NaN: to be evaluated, or not covered (see [`Snapshot::past_strength`]).
    past: f32,
}

impl EdgeRecord {
    fn of(relationship: &Relationship, source: u32, target: u32) -> Result<Self, ProjectionError> {
        let id = relationship.id.0;
        if !(0..=MAX_ID).contains(&id) {
            return Err(ProjectionError::IdTooLarge(id));
        }
        let packed = (id as u64) << 16
            | (relationship.rel_type as u64) << 8
            | u64::from(relationship.level.rank()) << 4
            | u64::from(relationship.bonds.bits());
        let sums = &relationship.sums;
        let unknown = |value: Option<f64>| value.map_or(f32::NAN, |value| value as f32);
        Ok(Self {
            source,
            target,
            packed,
            inputs: Inputs {
                last: sums.last.unwrap_or(f64::NAN),
                sums: [sums.weighted as f32, sums.inbound as f32, sums.outbound as f32, sums.sentiment as f32],
                trust_commitment: [
                    unknown(relationship.trust.map(|trust| trust.get())),
                    unknown(relationship.commitment.map(|commitment| commitment.get())),
                ],
                since: (seconds(relationship.since) / 60.0).floor().clamp(f64::from(i32::MIN), f64::from(i32::MAX))
                    as i32,
            },
            strength: f32::NAN,
            past: f32::NAN,
        })
    }

    fn id(&self) -> i64 {
        (self.packed >> 16) as i64
    }

    /// The record with its strength at `at` (seconds) and [`TREND_DAYS`] earlier, evaluating those not known yet
    /// (the earlier one only if no interaction is later than it: otherwise it stays NaN, for the history).
    fn evaluated(self, model: &StrengthModel, at: f64) -> Self {
        let strength = if self.strength.is_nan() { score(model, self.packed, &self.inputs, at) } else { self.strength };
        let past = if self.past.is_nan() { self.inputs.past(model, self.packed, at) } else { self.past };
        Self { strength, past, ..self }
    }
}

/// The strength at `at` (seconds) of an edge with these inputs.
fn score(model: &StrengthModel, packed: u64, inputs: &Inputs, at: f64) -> f32 {
    let last = (!inputs.last.is_nan()).then_some(inputs.last);
    let sums = DecayedSums {
        weighted: f64::from(inputs.sums[0]),
        inbound: f64::from(inputs.sums[1]),
        outbound: f64::from(inputs.sums[2]),
        sentiment: f64::from(inputs.sums[3]),
        t_ref: last.unwrap_or(0.0),
        last,
    };
    model_score(model, packed, inputs, &sums, at)
}

/// The strength at `at` (seconds) of an edge with this standing (`packed` and `inputs` but their sums) and `sums`.
fn model_score(model: &StrengthModel, packed: u64, inputs: &Inputs, sums: &DecayedSums, at: f64) -> f32 {
    let known = |value: f32| (!value.is_nan()).then_some(f64::from(value));
    let standing = Standing {
        level_rank: ((packed >> 4) & 0xf) as u8,
        bonds: BondSet::from_bits((packed & 0xf) as u8).len(),
        trust: known(inputs.trust_commitment[0]),
        commitment: known(inputs.trust_commitment[1]),
        since: f64::from(inputs.since) * 60.0,
    };
    model.score(&standing, sums, at) as f32
}

/// A change to apply to a snapshot.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// Stakeholders created or changed (live).
    pub stakeholders: Vec<NodeRow>,
    /// Stakeholders archived: they and their relationships leave the projection.
    pub removed: Vec<StakeholderId>,
    /// Relationships created or changed (either end may be unknown: then they are skipped).
    pub relationships: Vec<Relationship>,
}

impl Changes {
    /// Whether there is nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.stakeholders.is_empty() && self.removed.is_empty() && self.relationships.is_empty()
    }
}

/// An immutable projection of the graph at one change-log position, with strengths as of one time.
#[derive(Debug, Clone)]
pub struct Snapshot {
    seq: i64,
    as_of: DateTime<Utc>,
    model: Arc<StrengthModel>,
    nodes: Nodes,
    base: Arc<Base>,
    added: Added,
    /// Inputs of edges added or changed since the last compaction, by edge.
    changed: imbl::HashMap<u32, Inputs>,
    /// `id << 16 | type << 8 | level << 4 | bonds` of every edge.
    packed: Chunked<u64>,
    /// The strength of every edge as of `as_of`.
    strengths: Chunked<f32>,
    /// The strength of every edge [`TREND_DAYS`] before `as_of` (what its trend compares with); NaN where the
    /// snapshot does not cover that time (an interaction since: the history answers, [`Snapshot::with_past`]).
    past: Chunked<f32>,
}

impl Snapshot {
    /// The projection of `scan`, strengths as of `as_of`.
    pub fn build(scan: &GraphScan, model: Arc<StrengthModel>, as_of: DateTime<Utc>) -> Result<Self, ProjectionError> {
        let mut rows: Vec<NodeRow> = scan.stakeholders.clone();
        rows.sort_unstable_by_key(|row| row.id);
        rows.dedup_by_key(|row| row.id);
        let ids: Vec<i64> = rows.iter().map(|row| row.id.0).collect();
        let index = |id: StakeholderId| ids.binary_search(&id.0).ok().map(|index| index as u32);
        let mut records = Vec::with_capacity(scan.relationships.len());
        for relationship in &scan.relationships {
            if let (Some(source), Some(target)) = (index(relationship.from), index(relationship.to)) {
                records.push(EdgeRecord::of(relationship, source, target)?);
            }
        }
        Ok(assemble(scan.seq, as_of, model, &rows, records))
    }

    /// The change-log position this snapshot reflects.
    pub fn seq(&self) -> i64 {
        self.seq
    }

    /// The time its strengths are evaluated at.
    pub fn as_of(&self) -> DateTime<Utc> {
        self.as_of
    }

    /// How many stakeholders.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// How many relationships.
    pub fn edge_count(&self) -> usize {
        self.packed.len()
    }

    /// The index of stakeholder `id`, if it is live.
    pub fn index_of(&self, id: StakeholderId) -> Option<u32> {
        self.nodes.ids.binary_search(id.0).ok().map(|index| index as u32)
    }

    /// The stakeholder at `node`.
    pub fn stakeholder(&self, node: u32) -> StakeholderId {
        StakeholderId(self.nodes.ids[node as usize])
    }

    /// The kind of `node`.
    pub fn kind(&self, node: u32) -> StakeholderKind {
        StakeholderKind::ALL[usize::from(self.nodes.kinds[node as usize])]
    }

    /// The markets of `node`.
    pub fn markets(&self, node: u32) -> MarketSet {
        MarketSet::from_bits(self.nodes.markets[node as usize])
    }

    /// Whether `node` is private.
    #[inline]
    pub fn is_private(&self, node: u32) -> bool {
        self.nodes.flags[node as usize] & PRIVATE != 0
    }

    /// The out-edges of `node`, as edge indices.
    #[inline]
    pub fn out_edges(&self, node: u32) -> impl Iterator<Item = usize> + '_ {
        let added = match self.nodes.flags[node as usize] & ADDED_OUT {
            0 => None,
            _ => self.added.out.get(&node),
        };
        self.base.out_range(node).chain(added.into_iter().flat_map(|edges| edges.iter().map(|edge| *edge as usize)))
    }

    /// The edges arriving at `node`, as (source, edge).
    #[inline]
    pub fn in_edges(&self, node: u32) -> impl Iterator<Item = (u32, usize)> + '_ {
        let base = &self.base;
        let added = match self.nodes.flags[node as usize] & ADDED_IN {
            0 => None,
            _ => self.added.into.get(&node),
        };
        base.in_range(node)
            .map(|entry| (base.in_sources[entry], base.in_edges[entry] as usize))
            .chain(added.into_iter().flat_map(|entries| entries.iter().map(|(source, edge)| (*source, *edge as usize))))
    }

    /// Calls `visit(edge, target, strength)` for every edge leaving `node` (what analyses walk: the base's edges
    /// straight from their arrays).
    #[inline]
    pub fn for_each_out(&self, node: u32, mut visit: impl FnMut(usize, u32, f32)) {
        let base = &self.base;
        let range = base.out_range(node);
        for (edge, target) in range.clone().zip(&base.targets[range]) {
            visit(edge, *target, self.strengths[edge]);
        }
        if self.nodes.flags[node as usize] & ADDED_OUT != 0 {
            for edge in self.added.out.get(&node).into_iter().flat_map(|edges| edges.iter()) {
                let edge = *edge as usize;
                visit(edge, self.target(edge), self.strengths[edge]);
            }
        }
    }

    /// Calls `visit(edge, source, strength)` for every edge arriving at `node`.
    #[inline]
    pub fn for_each_in(&self, node: u32, mut visit: impl FnMut(usize, u32, f32)) {
        let base = &self.base;
        let range = base.in_range(node);
        for (source, edge) in base.in_sources[range.clone()].iter().zip(&base.in_edges[range]) {
            visit(*edge as usize, *source, self.strengths[*edge as usize]);
        }
        if self.nodes.flags[node as usize] & ADDED_IN != 0 {
            for (source, edge) in self.added.into.get(&node).into_iter().flat_map(|entries| entries.iter()) {
                visit(*edge as usize, *source, self.strengths[*edge as usize]);
            }
        }
    }

    /// The target of `edge`.
    #[inline]
    pub fn target(&self, edge: usize) -> u32 {
        match self.base.targets.get(edge) {
            Some(target) => *target,
            None => self.added.ends[edge - self.base.edges()].1,
        }
    }

    /// The strength of `edge` as of [`Snapshot::as_of`].
    #[inline]
    pub fn strength(&self, edge: usize) -> f32 {
        self.strengths[edge]
    }

    /// The strength of `edge` evaluated at `at` instead of the snapshot's clock (the same inputs and the same
    /// f32 result the snapshot would hold if its clock were `at`).
    pub fn strength_at(&self, edge: usize, at: DateTime<Utc>) -> f32 {
        score(&self.model, self.packed[edge], &self.inputs(edge), seconds(at))
    }

    /// The strength of `edge` [`TREND_DAYS`] before [`Snapshot::as_of`] (what its trend compares with), unless an
    /// interaction of it is later than that and its history has not been read for it ([`Snapshot::with_past`]).
    #[inline]
    pub fn past_strength(&self, edge: usize) -> Option<f32> {
        let past = self.past[edge];
        (!past.is_nan()).then_some(past)
    }

    /// The edges whose [`Snapshot::past_strength`] is not known, in edge order. O(m), a pass over one array.
    pub fn past_unknown(&self) -> Vec<usize> {
        let mut unknown = Vec::new();
        for (index, chunk) in self.past.chunks.iter().enumerate() {
            let base = index << CHUNK_BITS;
            unknown.extend(chunk.iter().enumerate().filter(|(_, past)| past.is_nan()).map(|(edge, _)| base + edge));
        }
        unknown
    }

    /// This snapshot with the past strengths of some edges known (`(edge, strength)`, read from their histories):
    /// the same graph, position and clock, so whatever was computed on it holds for the result too.
    pub fn with_past(&self, known: &[(usize, f32)]) -> Self {
        let mut next = self.clone();
        for (edge, past) in known {
            next.past.mark_bits(*edge, *past);
        }
        next
    }

    /// Whether `edge`'s strength can be evaluated at `at` from the snapshot alone: no interaction of it is later
    /// than `at` (earlier times need its history: [`crate::engine::trends`]).
    pub fn covers(&self, edge: usize, at: DateTime<Utc>) -> bool {
        self.inputs(edge).covers(seconds(at))
    }

    /// The strength of `edge` at `at` if the snapshot covers that time ([`Snapshot::covers`]), in one lookup.
    #[inline]
    pub fn strength_if_covered(&self, edge: usize, at: f64) -> Option<f32> {
        let inputs = self.inputs(edge);
        inputs.covers(at).then(|| score(&self.model, self.packed[edge], &inputs, at))
    }

    /// The strength of `edge` at `at` with `sums` in place of the snapshot's decayed sums (its level, bonds, trust,
    /// commitment and start as the snapshot holds them), in the snapshot's f32.
    pub fn strength_with(&self, edge: usize, sums: &DecayedSums, at: DateTime<Utc>) -> f32 {
        let packed = self.packed[edge];
        let inputs = self.inputs(edge);
        model_score(&self.model, packed, &inputs, sums, seconds(at))
    }

    /// The bits of `edge`'s interaction inputs (last interaction and decayed sums): they change whenever an
    /// interaction is recorded on it, so a value derived from its history stays valid while they are equal.
    pub fn interactions_key(&self, edge: usize) -> (u64, [u32; 4]) {
        let inputs = self.inputs(edge);
        (inputs.last.to_bits(), inputs.sums.map(f32::to_bits))
    }

    /// The bonds of `edge`.
    pub fn bonds(&self, edge: usize) -> BondSet {
        BondSet::from_bits((self.packed[edge] & 0xf) as u8)
    }

    /// The relationship of `edge`.
    pub fn relationship(&self, edge: usize) -> RelationshipId {
        RelationshipId((self.packed[edge] >> 16) as i64)
    }

    /// The type of `edge`.
    pub fn relationship_type(&self, edge: usize) -> RelationshipType {
        RelationshipType::ALL[((self.packed[edge] >> 8) & 0xff) as usize]
    }

    /// The Kotler level of `edge`.
    pub fn level(&self, edge: usize) -> Level {
        Level::ALL[(((self.packed[edge] >> 4) & 0xf) as usize).saturating_sub(1)]
    }

    /// The edge of relationship `id`, if it is in the projection.
    pub fn edge_of(&self, id: RelationshipId, from: StakeholderId) -> Option<usize> {
        let source = self.index_of(from)?;
        self.out_edges(source).find(|&edge| self.relationship(edge) == id)
    }

    /// Heap bytes held by this snapshot (parts shared with other snapshots counted in full; the delta since the
    /// last compaction estimated at its items' size).
    pub fn heap_bytes(&self) -> usize {
        let nodes = &self.nodes;
        let delta = self.changed.len() * std::mem::size_of::<(u32, Inputs)>()
            + self.added.ends.heap_bytes()
            + self.added.out.values().map(|edges| edges.len() * 4).sum::<usize>()
            + self.added.into.values().map(|entries| entries.len() * 8).sum::<usize>();
        nodes.ids.heap_bytes()
            + nodes.kinds.heap_bytes()
            + nodes.markets.heap_bytes()
            + nodes.flags.heap_bytes()
            + self.base.heap_bytes()
            + self.packed.heap_bytes()
            + self.strengths.heap_bytes()
            + self.past.heap_bytes()
            + delta
    }

    /// This snapshot with every strength re-evaluated at `as_of` (and compacted: the re-evaluation is a pass over
    /// every edge anyway).
    pub fn refreshed(&self, as_of: DateTime<Utc>) -> Self {
        let mut next = self.compacted();
        next.as_of = as_of;
        let at = seconds(as_of);
        let base = &next.base;
        let strengths =
            (0..next.edge_count()).map(|edge| score(&self.model, next.packed[edge], &base.inputs(edge), at));
        next.strengths = Chunked::from_vec(strengths.collect());
        let past = (0..next.edge_count()).map(|edge| base.inputs(edge).past(&self.model, next.packed[edge], at));
        next.past = Chunked::from_vec(past.collect());
        next
    }

    /// The snapshot after `changes` (read at change-log position `seq`). Strengths stay as of
    /// [`Snapshot::as_of`]; the changed relationships are evaluated at that time too (an interaction recorded
    /// after it counts as if it happened then).
    pub fn apply(&self, seq: i64, changes: &Changes) -> Result<Self, ProjectionError> {
        let mut next = self.clone();
        next.seq = seq.max(self.seq);
        if changes.is_empty() {
            return Ok(next);
        }
        // The last row of each stakeholder counts.
        let latest: std::collections::BTreeMap<StakeholderId, &NodeRow> =
            changes.stakeholders.iter().map(|row| (row.id, row)).collect();
        let removes = changes.removed.iter().any(|id| self.index_of(*id).is_some());
        let added: Vec<&NodeRow> = latest
            .values()
            .copied()
            .filter(|row| self.index_of(row.id).is_none() && !changes.removed.contains(&row.id))
            .collect();
        let last_id = self.node_count().checked_sub(1).map(|node| self.nodes.ids[node]);
        let appends_only = added.first().is_none_or(|row| last_id.is_none_or(|last| row.id.0 > last));
        if removes || !appends_only {
            return self.renumbered(next.seq, changes, &latest, &added);
        }
        for row in latest.values() {
            if let Some(node) = self.index_of(row.id) {
                next.nodes.update(node as usize, row);
            }
        }
        for row in added {
            next.nodes.push(row);
        }
        let at = seconds(self.as_of);
        for relationship in &changes.relationships {
            match next.edge_of(relationship.id, relationship.from) {
                Some(edge) => {
                    let record = EdgeRecord::of(relationship, 0, 0)?.evaluated(&self.model, at);
                    next.packed.mark(edge, record.packed);
                    next.strengths.mark(edge, record.strength);
                    next.past.mark_bits(edge, record.past);
                    if !next.inputs(edge).same(&record.inputs) {
                        next.changed.insert(edge as u32, record.inputs);
                    }
                }
                None => {
                    if let (Some(source), Some(target)) =
                        (next.index_of(relationship.from), next.index_of(relationship.to))
                    {
                        next.add_edge(EdgeRecord::of(relationship, source, target)?.evaluated(&self.model, at));
                    }
                }
            }
        }
        if next.changed.len() >= COMPACT_AT_LEAST.max(next.base.edges() / 4) {
            next = next.compacted();
        }
        Ok(next)
    }

    /// The strength inputs of `edge`.
    fn inputs(&self, edge: usize) -> Inputs {
        match self.changed.get(&(edge as u32)) {
            Some(inputs) => *inputs,
            None => self.base.inputs(edge),
        }
    }

    /// Adds `record` (its ends numbered, its strength evaluated) as the next edge.
    fn add_edge(&mut self, record: EdgeRecord) {
        let edge = self.edge_count() as u32;
        let (source, target) = (record.source, record.target);
        self.added.ends.push((source, target));
        self.packed.push(record.packed);
        self.strengths.push(record.strength);
        self.past.push(record.past);
        self.changed.insert(edge, record.inputs);
        let out: Vec<u32> = self.added.out.get(&source).into_iter().flat_map(|edges| edges.iter().copied()).collect();
        self.added.out.insert(source, out.into_iter().chain([edge]).collect());
        let into: Vec<(u32, u32)> =
            self.added.into.get(&target).into_iter().flat_map(|entries| entries.iter().copied()).collect();
        self.added.into.insert(target, into.into_iter().chain([(source, edge)]).collect());
        self.nodes.flags.mark(source as usize, self.nodes.flags[source as usize] | ADDED_OUT);
        self.nodes.flags.mark(target as usize, self.nodes.flags[target as usize] | ADDED_IN);
    }

    /// The same graph laid out as one base (what a build from the same rows gives): O(n + m). [`Snapshot::apply`]
    /// does it when the delta grows past a quarter of the base.
    pub fn compacted(&self) -> Self {
        let rows: Vec<NodeRow> = (0..self.node_count()).map(|node| self.nodes.row(node)).collect();
        let mut layout = Layout::with_capacity(self.edge_count());
        let mut edges = Vec::new();
        for node in 0..self.node_count() as u32 {
            edges.clear();
            edges.extend(self.out_edges(node));
            if self.nodes.flags[node as usize] & ADDED_OUT != 0 {
                edges.sort_unstable_by_key(|edge| self.packed[*edge] >> 16);
            }
            for edge in &edges {
                layout.push(self.record(node, *edge));
            }
        }
        layout.finish(self.seq, self.as_of, self.model.clone(), &rows)
    }

    /// The snapshot after `changes` when stakeholders leave or one is inserted between others: every node
    /// renumbered, every edge laid out again.
    fn renumbered(
        &self,
        seq: i64,
        changes: &Changes,
        latest: &std::collections::BTreeMap<StakeholderId, &NodeRow>,
        added: &[&NodeRow],
    ) -> Result<Self, ProjectionError> {
        let removed: std::collections::HashSet<StakeholderId> = changes.removed.iter().copied().collect();
        let mut rows: Vec<NodeRow> = (0..self.node_count())
            .map(|node| self.nodes.row(node))
            .filter(|row| !removed.contains(&row.id))
            .map(|row| latest.get(&row.id).map_or(row, |changed| **changed))
            .collect();
        rows.extend(added.iter().map(|row| **row));
        rows.sort_unstable_by_key(|row| row.id);
        let ids: Vec<i64> = rows.iter().map(|row| row.id.0).collect();
        let index = |id: StakeholderId| ids.binary_search(&id.0).ok().map(|index| index as u32);
        // Old node index → new one (None: archived), found once per node rather than once per edge end.
        let renumber: Vec<Option<u32>> =
            (0..self.node_count() as u32).map(|node| index(self.stakeholder(node))).collect();
        let changed: std::collections::HashMap<RelationshipId, &Relationship> =
            changes.relationships.iter().map(|relationship| (relationship.id, relationship)).collect();
        let mut records = Vec::with_capacity(self.edge_count() + changes.relationships.len());
        let mut known = std::collections::HashSet::new();
        for node in 0..self.node_count() as u32 {
            for edge in self.out_edges(node) {
                let id = self.relationship(edge);
                known.insert(id);
                let (Some(source), Some(target)) = (renumber[node as usize], renumber[self.target(edge) as usize])
                else {
                    continue;
                };
                records.push(match changed.get(&id) {
                    Some(relationship) => EdgeRecord::of(relationship, source, target)?,
                    None => EdgeRecord { source, target, ..self.record(node, edge) },
                });
            }
        }
        for relationship in changes.relationships.iter().filter(|relationship| !known.contains(&relationship.id)) {
            if let (Some(source), Some(target)) = (index(relationship.from), index(relationship.to)) {
                records.push(EdgeRecord::of(relationship, source, target)?);
            }
        }
        Ok(assemble(seq, self.as_of, self.model.clone(), &rows, records))
    }

    /// Edge `edge` (leaving `source`) as a record.
    fn record(&self, source: u32, edge: usize) -> EdgeRecord {
        EdgeRecord {
            source,
            target: self.target(edge),
            packed: self.packed[edge],
            inputs: self.inputs(edge),
            strength: self.strengths[edge],
            past: self.past[edge],
        }
    }
}

/// Lays `records` out as adjacency in both directions over the stakeholders `rows` (in id order), evaluating at
/// `as_of` the strengths not known yet.
fn assemble(
    seq: i64,
    as_of: DateTime<Utc>,
    model: Arc<StrengthModel>,
    rows: &[NodeRow],
    mut records: Vec<EdgeRecord>,
) -> Snapshot {
    records.sort_unstable_by_key(|record| (record.source, record.id()));
    let mut layout = Layout::with_capacity(records.len());
    for record in records {
        layout.push(record.evaluated(&model, seconds(as_of)));
    }
    layout.finish(seq, as_of, model, rows)
}

/// Edges gathered in out-order (by source), then laid out with their in-adjacency.
struct Layout {
    sources: Vec<u32>,
    targets: Vec<u32>,
    strengths: Vec<f32>,
    past: Vec<f32>,
    packed: Vec<u64>,
    last: Vec<f64>,
    sums: Vec<[f32; 4]>,
    trust_commitment: Vec<[f32; 2]>,
    since: Vec<i32>,
}

impl Layout {
    fn with_capacity(edges: usize) -> Self {
        Self {
            sources: Vec::with_capacity(edges),
            targets: Vec::with_capacity(edges),
            strengths: Vec::with_capacity(edges),
            past: Vec::with_capacity(edges),
            packed: Vec::with_capacity(edges),
            last: Vec::with_capacity(edges),
            sums: Vec::with_capacity(edges),
            trust_commitment: Vec::with_capacity(edges),
            since: Vec::with_capacity(edges),
        }
    }

    /// Adds the next edge (sources must not decrease; its strength must be known).
    fn push(&mut self, record: EdgeRecord) {
        debug_assert!(self.sources.last().is_none_or(|last| *last <= record.source));
        self.sources.push(record.source);
        self.targets.push(record.target);
        self.strengths.push(record.strength);
        self.past.push(record.past);
        self.packed.push(record.packed);
        self.last.push(record.inputs.last);
        self.sums.push(record.inputs.sums);
        self.trust_commitment.push(record.inputs.trust_commitment);
        self.since.push(record.inputs.since);
    }

    fn finish(self, seq: i64, as_of: DateTime<Utc>, model: Arc<StrengthModel>, rows: &[NodeRow]) -> Snapshot {
        let n = rows.len();
        let offsets = |ends: &[u32]| {
            let mut offsets = vec![0u32; n + 1];
            for end in ends {
                offsets[*end as usize + 1] += 1;
            }
            for node in 0..n {
                offsets[node + 1] += offsets[node];
            }
            offsets
        };
        let out_offsets = offsets(&self.sources);
        let in_offsets = offsets(&self.targets);
        let mut in_sources = vec![0u32; self.targets.len()];
        let mut in_edges = vec![0u32; self.targets.len()];
        let mut cursor: Vec<u32> = in_offsets[..n].to_vec();
        for (edge, (target, source)) in self.targets.iter().zip(&self.sources).enumerate() {
            let slot = &mut cursor[*target as usize];
            in_sources[*slot as usize] = *source;
            in_edges[*slot as usize] = edge as u32;
            *slot += 1;
        }
        let mut nodes = Nodes::default();
        for row in rows {
            nodes.push(row);
        }
        Snapshot {
            seq,
            as_of,
            model,
            nodes,
            base: Arc::new(Base {
                out_offsets,
                in_offsets,
                targets: self.targets,
                in_sources,
                in_edges,
                last: self.last,
                sums: self.sums,
                trust_commitment: self.trust_commitment,
                since: self.since,
            }),
            added: Added::default(),
            changed: imbl::HashMap::new(),
            packed: Chunked::from_vec(self.packed),
            strengths: Chunked::from_vec(self.strengths),
            past: Chunked::from_vec(self.past),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::strength::DecayedSums;
    use crate::domain::{Channel, Direction, Level, Probability, RelationshipUpsert};
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap()
    }

    fn node(id: i64, private: bool) -> NodeRow {
        NodeRow { id: StakeholderId(id), kind: StakeholderKind::Customer, markets: MarketSet::EMPTY, private }
    }

    fn relationship(id: i64, from: i64, to: i64, level: u8, meetings: u32) -> Relationship {
        let mut relationship = RelationshipUpsert {
            from: StakeholderId(from),
            to: StakeholderId(to),
            rel_type: RelationshipType::Knows,
            level: Level::from_rank(level),
            bonds: None,
            trust: Some(Probability::parse(0.5).unwrap()),
            commitment: None,
            since: Some(at() - chrono::Duration::days(400)),
            basis: None,
        }
        .create(RelationshipId(id), at());
        let mut sums = DecayedSums::default();
        for meeting in 0..meetings {
            let when = at() - chrono::Duration::days(i64::from(meeting) * 9);
            sums.add(&StrengthModel::default(), when, Channel::Meeting, Direction::Outbound, 0.5);
        }
        relationship.sums = sums;
        relationship
    }

    /// Everything observable about a snapshot, by stakeholder and relationship id.
    fn contents(snapshot: &Snapshot) -> Vec<(i64, i64, i64, u32, bool)> {
        let mut edges: Vec<_> = (0..snapshot.node_count() as u32)
            .flat_map(|source| {
                snapshot.out_edges(source).map(move |edge| {
                    (
                        snapshot.relationship(edge).0,
                        snapshot.stakeholder(source).0,
                        snapshot.stakeholder(snapshot.target(edge)).0,
                        snapshot.strength(edge).to_bits(),
                        snapshot.is_private(source),
                    )
                })
            })
            .collect();
        edges.sort_unstable();
        // The reverse adjacency must hold exactly the same edges.
        let mut reverse: Vec<(i64, i64, i64)> = (0..snapshot.node_count() as u32)
            .flat_map(|target| {
                snapshot.in_edges(target).map(move |(source, edge)| {
                    (snapshot.relationship(edge).0, snapshot.stakeholder(source).0, snapshot.stakeholder(target).0)
                })
            })
            .collect();
        reverse.sort_unstable();
        assert_eq!(reverse, edges.iter().map(|edge| (edge.0, edge.1, edge.2)).collect::<Vec<_>>());
        // What the analyses walk sees the same edges, with the same strengths.
        let mut walked: Vec<(i64, i64, i64, u32)> = Vec::new();
        for node in 0..snapshot.node_count() as u32 {
            snapshot.for_each_out(node, |edge, target, strength| {
                walked.push((
                    snapshot.relationship(edge).0,
                    snapshot.stakeholder(node).0,
                    snapshot.stakeholder(target).0,
                    strength.to_bits(),
                ))
            });
            snapshot.for_each_in(node, |edge, source, strength| {
                assert_eq!(snapshot.target(edge), node);
                assert_eq!(strength.to_bits(), snapshot.strength_at(edge, snapshot.as_of()).to_bits());
                assert_eq!(snapshot.edge_of(snapshot.relationship(edge), snapshot.stakeholder(source)), Some(edge));
            });
        }
        walked.sort_unstable();
        assert_eq!(walked, edges.iter().map(|edge| (edge.0, edge.1, edge.2, edge.3)).collect::<Vec<_>>());
        edges
    }

    /// The rows a rebuild reads: stakeholders `1..=nodes` but the archived ones, some private.
    fn rows(nodes: i64, archived: &[i64], private: &[i64]) -> Vec<NodeRow> {
        (1..=nodes).filter(|id| !archived.contains(id)).map(|id| node(id, private.contains(&id))).collect()
    }

    #[test]
    fn adding_a_relationship_shares_the_base_and_a_large_delta_is_compacted() {
        let model = Arc::new(StrengthModel::default());
        let scan = GraphScan {
            archived: Vec::new(),
            seq: 1,
            stakeholders: (1..=10).map(|id| node(id, false)).collect(),
            relationships: vec![relationship(1, 1, 2, 3, 2), relationship(2, 2, 3, 2, 1)],
        };
        let before = Snapshot::build(&scan, model.clone(), at()).unwrap();
        let one = Changes { relationships: vec![relationship(3, 4, 2, 4, 3)], ..Changes::default() };
        let after = before.apply(2, &one).unwrap();
        assert!(Arc::ptr_eq(&before.base, &after.base), "one new relationship must not lay the graph out again");
        assert_eq!((after.edge_count(), after.changed.len()), (3, 1));
        let mut relationships = scan.relationships.clone();
        relationships.extend(one.relationships.clone());
        let rebuilt = Snapshot::build(
            &GraphScan {
                archived: Vec::new(),
                seq: 2,
                stakeholders: scan.stakeholders.clone(),
                relationships: relationships.clone(),
            },
            model.clone(),
            at(),
        )
        .unwrap();
        assert_eq!(contents(&after), contents(&rebuilt));
        assert_eq!(contents(&after.compacted()), contents(&rebuilt));

        // Enough new relationships at once that the delta passes the threshold: the result is one base again.
        let many: Vec<Relationship> = (0..2 * COMPACT_AT_LEAST as i64)
            .map(|n| relationship(100 + n, 1 + n % 10, 1 + (n / 10 + n % 10 + 1) % 10, 1 + (n % 5) as u8, 0))
            .filter(|relationship| relationship.from != relationship.to)
            .collect();
        let batch = Changes { relationships: many.clone(), ..Changes::default() };
        let grown = after.apply(3, &batch).unwrap();
        relationships.extend(many);
        let rebuilt = Snapshot::build(
            &GraphScan { archived: Vec::new(), seq: 3, stakeholders: scan.stakeholders, relationships },
            model,
            at(),
        )
        .unwrap();
        assert!(grown.changed.is_empty() && grown.added.ends.len() == 0, "the delta is compacted");
        assert_eq!(grown.base.edges(), grown.edge_count());
        assert_eq!(contents(&grown), contents(&rebuilt));
    }

    proptest! {
        /// Applying changes to a snapshot gives the snapshot built from the changed graph: new and archived
        /// stakeholders, new relationships, and changed ones.
        #[test]
        fn applying_changes_equals_rebuilding(
            nodes in 2i64..12,
            edges in prop::collection::vec((1i64..12, 1i64..12, 1u8..=5, 0u32..5), 0..25),
            added in prop::collection::vec((1i64..16, 1i64..16, 1u8..=5, 0u32..5), 0..8),
            new_nodes in 0i64..4,
            archived in prop::collection::vec(1i64..16, 0..3),
            private in prop::collection::vec(1i64..16, 0..3),
        ) {
            let model = Arc::new(StrengthModel::default());
            let initial: Vec<Relationship> = edges
                .iter()
                .enumerate()
                .filter(|(_, (from, to, _, _))| from != to && *from <= nodes && *to <= nodes)
                .map(|(index, &(from, to, level, meetings))| relationship(index as i64 + 1, from, to, level, meetings))
                .collect();
            let scan = GraphScan {
                archived: Vec::new(),
                seq: 1,
                stakeholders: (1..=nodes).map(|id| node(id, false)).collect(),
                relationships: initial.clone(),
            };
            let before = Snapshot::build(&scan, model.clone(), at()).unwrap();

            // Changes: some new stakeholders, new relationships and changes of existing ones (same id), some
            // stakeholders made private, some archived.
            let all = nodes + new_nodes;
            let mut changes = Changes {
                stakeholders: (nodes + 1..=all).map(|id| node(id, false)).collect(),
                ..Changes::default()
            };
            changes.stakeholders.extend(private.iter().filter(|id| **id <= all).map(|id| node(*id, true)));
            changes.removed = archived.iter().filter(|id| **id <= all).map(|id| StakeholderId(*id)).collect();
            let mut relationships: std::collections::BTreeMap<i64, Relationship> =
                initial.iter().map(|relationship| (relationship.id.0, relationship.clone())).collect();
            for (position, &(from, to, level, meetings)) in added.iter().enumerate() {
                let existing = initial.get(position).filter(|_| position % 2 == 0);
                let changed = match existing {
                    Some(old) => relationship(old.id.0, old.from.0, old.to.0, level, meetings),
                    None if from != to && from <= all && to <= all => {
                        relationship(100 + position as i64, from, to, level, meetings)
                    }
                    None => continue,
                };
                relationships.insert(changed.id.0, changed.clone());
                changes.relationships.push(changed);
            }
            let after = before.apply(2, &changes).unwrap();

            let mut stakeholders: Vec<NodeRow> = (1..=all)
                .filter(|id| !archived.contains(id))
                .map(|id| node(id, private.contains(&id)))
                .collect();
            stakeholders.sort_by_key(|row| row.id);
            let rebuilt = Snapshot::build(
                &GraphScan { archived: Vec::new(), seq: 2, stakeholders, relationships: relationships.into_values().collect() },
                model,
                at(),
            )
            .unwrap();
            prop_assert_eq!(after.seq(), 2);
            prop_assert_eq!(after.node_count(), rebuilt.node_count());
            prop_assert_eq!(contents(&after), contents(&rebuilt));
            prop_assert_eq!(contents(&after.compacted()), contents(&rebuilt));
        }

        /// Several batches applied one after another (each adding stakeholders and relationships, changing some,
        /// sometimes making one private or archiving one) equal, after each batch, the snapshot rebuilt from the
        /// graph as it then is; and so does the compacted snapshot. Batches that archive nothing leave the base
        /// shared.
        #[test]
        fn applying_batch_after_batch_equals_rebuilding_after_each(
            nodes in 2i64..10,
            edges in prop::collection::vec((1i64..10, 1i64..10, 1u8..=5, 0u32..4), 0..20),
            steps in prop::collection::vec(
                (
                    0i64..3,
                    prop::collection::vec((1i64..30, 1i64..30, 1u8..=5, 0u32..4, any::<bool>()), 0..6),
                    prop::option::weighted(0.2, 1i64..30),
                    prop::option::weighted(0.2, 1i64..30),
                ),
                1..6,
            ),
        ) {
            let model = Arc::new(StrengthModel::default());
            let mut relationships: std::collections::BTreeMap<i64, Relationship> = edges
                .iter()
                .enumerate()
                .filter(|(_, (from, to, _, _))| from != to && *from <= nodes && *to <= nodes)
                .map(|(index, &(from, to, level, meetings))| {
                    (index as i64 + 1, relationship(index as i64 + 1, from, to, level, meetings))
                })
                .collect();
            let (mut all, mut archived, mut private) = (nodes, Vec::new(), Vec::new());
            let scan = |seq: i64, all: i64, archived: &[i64], private: &[i64], relationships: &std::collections::BTreeMap<i64, Relationship>| GraphScan {
                archived: Vec::new(),
                seq,
                stakeholders: rows(all, archived, private),
                relationships: relationships.values().cloned().collect(),
            };
            let mut snapshot = Snapshot::build(&scan(1, all, &archived, &private, &relationships), model.clone(), at()).unwrap();
            let mut next_id = 1_000;
            for (step, (new_nodes, touched, made_private, archives)) in steps.iter().enumerate() {
                let seq = step as i64 + 2;
                let mut changes = Changes {
                    stakeholders: (all + 1..=all + new_nodes).map(|id| node(id, false)).collect(),
                    ..Changes::default()
                };
                all += new_nodes;
                if let Some(id) = made_private.filter(|id| *id <= all && !archived.contains(id)) {
                    private.push(id);
                    changes.stakeholders.push(node(id, true));
                }
                if let Some(id) = archives.filter(|id| *id <= all && !archived.contains(id)) {
                    archived.push(id);
                    changes.removed.push(StakeholderId(id));
                }
                let existing: Vec<i64> = relationships.keys().copied().collect();
                for (position, &(from, to, level, meetings, change)) in touched.iter().enumerate() {
                    let changed = match existing.get((from as usize * 7 + position) % existing.len().max(1)) {
                        Some(id) if change => {
                            let old = &relationships[id];
                            relationship(old.id.0, old.from.0, old.to.0, level, meetings)
                        }
                        _ if from != to && from <= all && to <= all => {
                            next_id += 1;
                            relationship(next_id, from, to, level, meetings)
                        }
                        _ => continue,
                    };
                    relationships.insert(changed.id.0, changed.clone());
                    changes.relationships.push(changed);
                }
                let after = snapshot.apply(seq, &changes).unwrap();
                if changes.removed.is_empty() {
                    prop_assert!(Arc::ptr_eq(&snapshot.base, &after.base));
                }
                let rebuilt = Snapshot::build(&scan(seq, all, &archived, &private, &relationships), model.clone(), at()).unwrap();
                prop_assert_eq!(after.node_count(), rebuilt.node_count());
                prop_assert_eq!(contents(&after), contents(&rebuilt));
                prop_assert_eq!(contents(&after.compacted()), contents(&rebuilt));
                snapshot = after;
            }
        }
    }
}
