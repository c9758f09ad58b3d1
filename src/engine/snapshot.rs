//! An immutable, compact projection of the live graph (DESIGN.md §5): stakeholders as dense indices (in id
//! order), relationships as compressed sparse rows in both directions, each with its strength inputs and its
//! strength as of the snapshot's clock.
//!
//! Layout, per relationship (SoA, 60 bytes): target (4), strength (4), the in-adjacency's source and edge (8),
//! id + type + level + bonds packed in 8, last interaction (8), four decayed sums as f32 (16), trust and
//! commitment as f32 (8), start in minutes (4). Strengths are single precision: analytics read them as such and
//! the export writes exactly these values, so peers load the same graph.
//!
//! A new snapshot is derived from the previous one and the rows that changed: attribute changes copy only the
//! attribute arrays; a new or removed relationship or stakeholder re-assembles the adjacency (O(n + m)).

use crate::domain::strength::{seconds, DecayedSums, Standing, StrengthModel};
use crate::domain::{
    BondSet, MarketSet, Relationship, RelationshipId, RelationshipType, StakeholderId, StakeholderKind,
};
use crate::store::{GraphScan, NodeRow};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

/// Node flag: the stakeholder is private.
const PRIVATE: u8 = 1;

/// Relationship ids must fit in the 48 bits the packed edge word leaves for them.
const MAX_ID: i64 = (1 << 48) - 1;

/// Why a projection cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// A relationship id does not fit the packed layout.
    #[error("relationship id {0} is above the projection's limit of 2^48 - 1")]
    IdTooLarge(i64),
}

/// Stakeholders, in id order, with where their edges are.
#[derive(Debug, Clone, Default)]
struct Nodes {
    ids: Vec<i64>,
    kinds: Vec<u8>,
    markets: Vec<u8>,
    flags: Vec<u8>,
    /// Out-edges of node `v` are `out_offsets[v]..out_offsets[v + 1]`.
    out_offsets: Vec<u32>,
    /// In-adjacency entries of node `v` are `in_offsets[v]..in_offsets[v + 1]`.
    in_offsets: Vec<u32>,
}

/// Who is connected to whom, in both directions.
#[derive(Debug, Clone, Default)]
struct Topology {
    /// Target of each edge (edges are ordered by source, then relationship id).
    targets: Vec<u32>,
    /// Source of each in-adjacency entry (entries are ordered by target, then edge).
    in_sources: Vec<u32>,
    /// Edge of each in-adjacency entry.
    in_edges: Vec<u32>,
}

/// What strength is computed from, per edge, in copy-on-write chunks: a change to one relationship copies one
/// chunk of each array, not the arrays.
#[derive(Debug, Clone, Default)]
struct Inputs {
    /// `id << 16 | type << 8 | level << 4 | bonds`.
    packed: Chunked<u64>,
    /// Last interaction in seconds since the epoch; NaN when there is none.
    last: Chunked<f64>,
    /// Decayed sums (weighted, inbound, outbound, sentiment), referred to `last`.
    sums: Chunked<[f32; 4]>,
    /// Trust and commitment; NaN when unknown.
    trust_commitment: Chunked<[f32; 2]>,
    /// Start of the relationship, in minutes since the epoch.
    since: Chunked<i32>,
}

/// log2 of the items in one chunk.
const CHUNK_BITS: usize = 12;

/// An array in shared chunks of `1 << CHUNK_BITS` items: cloning it copies pointers, changing an item copies its
/// chunk only if another snapshot shares it.
#[derive(Debug, Clone, Default)]
struct Chunked<T> {
    chunks: Vec<Arc<Vec<T>>>,
    len: usize,
}

impl<T: Copy> Chunked<T> {
    fn from_vec(items: Vec<T>) -> Self {
        let len = items.len();
        let chunks = items.chunks(1 << CHUNK_BITS).map(|chunk| Arc::new(chunk.to_vec())).collect();
        Self { chunks, len }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn set(&mut self, index: usize, value: T) {
        Arc::make_mut(&mut self.chunks[index >> CHUNK_BITS])[index & ((1 << CHUNK_BITS) - 1)] = value;
    }

    fn heap_bytes(&self) -> usize {
        self.chunks.capacity() * std::mem::size_of::<Arc<Vec<T>>>()
            + self.chunks.iter().map(|chunk| chunk.capacity() * std::mem::size_of::<T>()).sum::<usize>()
    }
}

impl<T> std::ops::Index<usize> for Chunked<T> {
    type Output = T;

    #[inline]
    fn index(&self, index: usize) -> &T {
        &self.chunks[index >> CHUNK_BITS][index & ((1 << CHUNK_BITS) - 1)]
    }
}

/// One relationship in compact form, for assembling.
#[derive(Debug, Clone, Copy)]
struct EdgeRecord {
    source: u32,
    target: u32,
    packed: u64,
    last: f64,
    sums: [f32; 4],
    trust_commitment: [f32; 2],
    since: i32,
    /// Its strength at the snapshot's clock; NaN: to be evaluated.
    strength: f32,
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
            last: sums.last.unwrap_or(f64::NAN),
            sums: [sums.weighted as f32, sums.inbound as f32, sums.outbound as f32, sums.sentiment as f32],
            trust_commitment: [
                unknown(relationship.trust.map(|trust| trust.get())),
                unknown(relationship.commitment.map(|commitment| commitment.get())),
            ],
            since: (seconds(relationship.since) / 60.0).floor().clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32,
            strength: f32::NAN,
        })
    }

    fn id(&self) -> i64 {
        (self.packed >> 16) as i64
    }

    /// The record with its strength at `at` (seconds), evaluating it if it is not known yet.
    fn evaluated(self, model: &StrengthModel, at: f64) -> Self {
        if !self.strength.is_nan() {
            return self;
        }
        let (standing, sums) = strength_inputs(self.packed, self.last, self.sums, self.trust_commitment, self.since);
        Self { strength: model.score(&standing, &sums, at) as f32, ..self }
    }
}

/// The standing and sums of an edge, from its compact inputs.
fn strength_inputs(
    packed: u64,
    last: f64,
    sums: [f32; 4],
    trust_commitment: [f32; 2],
    since: i32,
) -> (Standing, DecayedSums) {
    let known = |value: f32| (!value.is_nan()).then_some(f64::from(value));
    let standing = Standing {
        level_rank: ((packed >> 4) & 0xf) as u8,
        bonds: BondSet::from_bits((packed & 0xf) as u8).len(),
        trust: known(trust_commitment[0]),
        commitment: known(trust_commitment[1]),
        since: f64::from(since) * 60.0,
    };
    let last = (!last.is_nan()).then_some(last);
    let decayed = DecayedSums {
        weighted: f64::from(sums[0]),
        inbound: f64::from(sums[1]),
        outbound: f64::from(sums[2]),
        sentiment: f64::from(sums[3]),
        t_ref: last.unwrap_or(0.0),
        last,
    };
    (standing, decayed)
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
    nodes: Arc<Nodes>,
    topology: Arc<Topology>,
    inputs: Arc<Inputs>,
    strengths: Arc<Vec<f32>>,
}

impl Snapshot {
    /// The projection of `scan`, strengths as of `as_of`.
    pub fn build(scan: &GraphScan, model: Arc<StrengthModel>, as_of: DateTime<Utc>) -> Result<Self, ProjectionError> {
        let mut nodes = Nodes::default();
        let mut rows: Vec<NodeRow> = scan.stakeholders.clone();
        rows.sort_unstable_by_key(|row| row.id);
        rows.dedup_by_key(|row| row.id);
        for row in &rows {
            push_node(&mut nodes, row);
        }
        let mut records = Vec::with_capacity(scan.relationships.len());
        for relationship in &scan.relationships {
            if let (Some(source), Some(target)) =
                (index_in(&nodes.ids, relationship.from), index_in(&nodes.ids, relationship.to))
            {
                records.push(EdgeRecord::of(relationship, source, target)?);
            }
        }
        Ok(assemble(scan.seq, as_of, model, nodes, records))
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
        self.nodes.ids.len()
    }

    /// How many relationships.
    pub fn edge_count(&self) -> usize {
        self.topology.targets.len()
    }

    /// The index of stakeholder `id`, if it is live.
    pub fn index_of(&self, id: StakeholderId) -> Option<u32> {
        index_in(&self.nodes.ids, id)
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
    pub fn is_private(&self, node: u32) -> bool {
        self.nodes.flags[node as usize] & PRIVATE != 0
    }

    /// The out-edges of `node`, as edge indices.
    #[inline]
    pub fn out_edges(&self, node: u32) -> Range<usize> {
        let offsets = &self.nodes.out_offsets;
        offsets[node as usize] as usize..offsets[node as usize + 1] as usize
    }

    /// The in-adjacency entries of `node` (see [`Snapshot::in_entry`]).
    #[inline]
    pub fn in_entries(&self, node: u32) -> Range<usize> {
        let offsets = &self.nodes.in_offsets;
        offsets[node as usize] as usize..offsets[node as usize + 1] as usize
    }

    /// In-adjacency entry `entry`: (source, edge).
    #[inline]
    pub fn in_entry(&self, entry: usize) -> (u32, u32) {
        (self.topology.in_sources[entry], self.topology.in_edges[entry])
    }

    /// The target of `edge`.
    #[inline]
    pub fn target(&self, edge: usize) -> u32 {
        self.topology.targets[edge]
    }

    /// The strength of `edge` as of [`Snapshot::as_of`].
    #[inline]
    pub fn strength(&self, edge: usize) -> f32 {
        self.strengths[edge]
    }

    /// The strength of `edge` evaluated at `at` instead of the snapshot's clock (the same inputs and the same
    /// f32 result the snapshot would hold if its clock were `at`).
    pub fn strength_at(&self, edge: usize, at: DateTime<Utc>) -> f32 {
        score_of(&self.model, &self.inputs, edge, seconds(at))
    }

    /// The relationship of `edge`.
    pub fn relationship(&self, edge: usize) -> RelationshipId {
        RelationshipId((self.inputs.packed[edge] >> 16) as i64)
    }

    /// The type of `edge`.
    pub fn relationship_type(&self, edge: usize) -> RelationshipType {
        RelationshipType::ALL[((self.inputs.packed[edge] >> 8) & 0xff) as usize]
    }

    /// The edge of relationship `id`, if it is in the projection.
    pub fn edge_of(&self, id: RelationshipId, from: StakeholderId) -> Option<usize> {
        let source = self.index_of(from)?;
        self.out_edges(source).find(|&edge| self.relationship(edge) == id)
    }

    /// Heap bytes held by this snapshot (arrays shared with other snapshots counted in full).
    pub fn heap_bytes(&self) -> usize {
        fn bytes<T>(items: &Vec<T>) -> usize {
            items.capacity() * std::mem::size_of::<T>()
        }
        let (nodes, topology, inputs) = (&self.nodes, &self.topology, &self.inputs);
        bytes(&nodes.ids)
            + bytes(&nodes.kinds)
            + bytes(&nodes.markets)
            + bytes(&nodes.flags)
            + bytes(&nodes.out_offsets)
            + bytes(&nodes.in_offsets)
            + bytes(&topology.targets)
            + bytes(&topology.in_sources)
            + bytes(&topology.in_edges)
            + inputs.packed.heap_bytes()
            + inputs.last.heap_bytes()
            + inputs.sums.heap_bytes()
            + inputs.trust_commitment.heap_bytes()
            + inputs.since.heap_bytes()
            + bytes(&self.strengths)
    }

    /// This snapshot with every strength re-evaluated at `as_of`.
    pub fn refreshed(&self, as_of: DateTime<Utc>) -> Self {
        let mut next = self.clone();
        next.as_of = as_of;
        next.strengths = Arc::new(evaluate_all(&self.model, &self.inputs, as_of));
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
        let removed: Vec<u32> = changes.removed.iter().filter_map(|id| self.index_of(*id)).collect();
        // The last row of each stakeholder counts.
        let latest: std::collections::BTreeMap<StakeholderId, &NodeRow> =
            changes.stakeholders.iter().map(|row| (row.id, row)).collect();
        let added: Vec<&NodeRow> = latest
            .values()
            .copied()
            .filter(|row| self.index_of(row.id).is_none() && !changes.removed.contains(&row.id))
            .collect();
        let appends_only = added.iter().all(|row| self.nodes.ids.last().is_none_or(|last| row.id.0 > *last));
        // Attribute changes to known stakeholders.
        // Shared with this snapshot until something in it changes.
        let mut nodes = Arc::clone(&self.nodes);
        for row in latest.values() {
            if let Some(index) = index_in(&nodes.ids, row.id) {
                let index = index as usize;
                let flags = if row.private { PRIVATE } else { 0 };
                let current = (nodes.kinds[index], nodes.markets[index], nodes.flags[index]);
                if current != (row.kind as u8, row.markets.bits(), flags) {
                    let nodes = Arc::make_mut(&mut nodes);
                    nodes.kinds[index] = row.kind as u8;
                    nodes.markets[index] = row.markets.bits();
                    nodes.flags[index] = flags;
                }
            }
        }
        let mut updates: Vec<(usize, EdgeRecord)> = Vec::new();
        let mut inserts: Vec<&Relationship> = Vec::new();
        for relationship in &changes.relationships {
            match self.edge_of(relationship.id, relationship.from) {
                Some(edge) => {
                    let record = EdgeRecord::of(relationship, 0, 0)?;
                    updates.push((edge, record));
                }
                None => inserts.push(relationship),
            }
        }
        if removed.is_empty() && appends_only {
            for row in added {
                let nodes = Arc::make_mut(&mut nodes);
                let edges = *nodes.out_offsets.last().unwrap_or(&0);
                let entries = *nodes.in_offsets.last().unwrap_or(&0);
                nodes.ids.push(row.id.0);
                nodes.kinds.push(row.kind as u8);
                nodes.markets.push(row.markets.bits());
                nodes.flags.push(if row.private { PRIVATE } else { 0 });
                nodes.out_offsets.push(edges);
                nodes.in_offsets.push(entries);
            }
            if !updates.is_empty() {
                let mut inputs = (*self.inputs).clone();
                let mut strengths = (*self.strengths).clone();
                let at = seconds(self.as_of);
                for (edge, record) in &updates {
                    inputs.packed.set(*edge, record.packed);
                    inputs.last.set(*edge, record.last);
                    inputs.sums.set(*edge, record.sums);
                    inputs.trust_commitment.set(*edge, record.trust_commitment);
                    inputs.since.set(*edge, record.since);
                    strengths[*edge] = record.evaluated(&self.model, at).strength;
                }
                next.inputs = Arc::new(inputs);
                next.strengths = Arc::new(strengths);
            }
            next.nodes = nodes;
            let mut records = Vec::with_capacity(inserts.len());
            for relationship in inserts {
                if let (Some(source), Some(target)) = (next.index_of(relationship.from), next.index_of(relationship.to))
                {
                    records.push(EdgeRecord::of(relationship, source, target)?);
                }
            }
            if !records.is_empty() {
                next = next.with_edges(records);
            }
            return Ok(next);
        }
        // The topology changes: re-assemble from every record, patched.
        let mut records = self.records();
        let by_edge: HashMap<usize, EdgeRecord> = updates.into_iter().collect();
        for (edge, record) in records.iter_mut().enumerate() {
            if let Some(update) = by_edge.get(&edge) {
                *record = EdgeRecord { source: record.source, target: record.target, ..*update };
            }
        }
        let ids_before = nodes.ids.clone();
        // Rebuild the node table: survivors, plus the new stakeholders, in id order.
        let mut rows: Vec<NodeRow> = (0..ids_before.len())
            .filter(|index| !removed.contains(&(*index as u32)))
            .map(|index| NodeRow {
                id: StakeholderId(nodes.ids[index]),
                kind: StakeholderKind::ALL[usize::from(nodes.kinds[index])],
                markets: MarketSet::from_bits(nodes.markets[index]),
                private: nodes.flags[index] & PRIVATE != 0,
            })
            .collect();
        rows.extend(added.into_iter().copied());
        rows.sort_unstable_by_key(|row| row.id);
        let mut table = Nodes::default();
        for row in &rows {
            push_node(&mut table, row);
        }
        // Old node index → new one (u32::MAX: archived), found once per node rather than once per edge end.
        let renumbered: Vec<u32> =
            ids_before.iter().map(|id| index_in(&table.ids, StakeholderId(*id)).unwrap_or(u32::MAX)).collect();
        let renumber = |old: u32| Some(renumbered[old as usize]).filter(|new| *new != u32::MAX);
        let mut patched: Vec<EdgeRecord> = records
            .into_iter()
            .filter_map(|record| {
                let (source, target) = (renumber(record.source)?, renumber(record.target)?);
                Some(EdgeRecord { source, target, ..record })
            })
            .collect();
        for relationship in inserts {
            if let (Some(source), Some(target)) =
                (index_in(&table.ids, relationship.from), index_in(&table.ids, relationship.to))
            {
                patched.push(EdgeRecord::of(relationship, source, target)?);
            }
        }
        Ok(assemble(next.seq, self.as_of, self.model.clone(), table, patched))
    }

    /// This snapshot with `new` edges added (their ends already numbered): each node's old edges are copied
    /// in order with its new ones merged in, so no sort of the whole graph and no re-evaluation of old strengths.
    fn with_edges(&self, mut new: Vec<EdgeRecord>) -> Self {
        new.sort_unstable_by_key(|record| (record.source, record.id()));
        let at = seconds(self.as_of);
        let mut layout = Layout::with_capacity(self.edge_count() + new.len());
        let mut pending = new.into_iter().peekable();
        for node in 0..self.node_count() as u32 {
            let mut old_edges = self.out_edges(node).peekable();
            loop {
                let take_new = match (old_edges.peek(), pending.peek()) {
                    (_, Some(record)) if record.source != node => false,
                    (None, Some(_)) => true,
                    (Some(&edge), Some(record)) => record.id() < self.relationship(edge).0,
                    (_, None) => false,
                };
                if take_new {
                    layout.push(pending.next().expect("peeked").evaluated(&self.model, at));
                } else if let Some(edge) = old_edges.next() {
                    layout.push(self.record(node, edge));
                } else {
                    break;
                }
            }
        }
        layout.finish(self.seq, self.as_of, self.model.clone(), (*self.nodes).clone())
    }

    /// Edge `edge` (leaving `source`) as a record.
    fn record(&self, source: u32, edge: usize) -> EdgeRecord {
        let inputs = &self.inputs;
        EdgeRecord {
            source,
            target: self.topology.targets[edge],
            packed: inputs.packed[edge],
            last: inputs.last[edge],
            sums: inputs.sums[edge],
            trust_commitment: inputs.trust_commitment[edge],
            since: inputs.since[edge],
            strength: self.strengths[edge],
        }
    }

    /// Every edge as a record.
    fn records(&self) -> Vec<EdgeRecord> {
        let mut records = Vec::with_capacity(self.edge_count());
        for source in 0..self.node_count() as u32 {
            records.extend(self.out_edges(source).map(|edge| self.record(source, edge)));
        }
        records
    }
}

fn index_in(ids: &[i64], id: StakeholderId) -> Option<u32> {
    ids.binary_search(&id.0).ok().map(|index| index as u32)
}

fn push_node(nodes: &mut Nodes, row: &NodeRow) {
    nodes.ids.push(row.id.0);
    nodes.kinds.push(row.kind as u8);
    nodes.markets.push(row.markets.bits());
    nodes.flags.push(if row.private { PRIVATE } else { 0 });
}

/// Lays `records` out as adjacency in both directions, evaluating at `as_of` the strengths not known yet.
fn assemble(
    seq: i64,
    as_of: DateTime<Utc>,
    model: Arc<StrengthModel>,
    nodes: Nodes,
    mut records: Vec<EdgeRecord>,
) -> Snapshot {
    records.sort_unstable_by_key(|record| (record.source, record.id()));
    let mut layout = Layout::with_capacity(records.len());
    for record in records {
        layout.push(record.evaluated(&model, seconds(as_of)));
    }
    layout.finish(seq, as_of, model, nodes)
}

/// Edges gathered in out-order (by source), then laid out with their in-adjacency.
struct Layout {
    sources: Vec<u32>,
    targets: Vec<u32>,
    strengths: Vec<f32>,
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
        self.packed.push(record.packed);
        self.last.push(record.last);
        self.sums.push(record.sums);
        self.trust_commitment.push(record.trust_commitment);
        self.since.push(record.since);
    }

    fn finish(self, seq: i64, as_of: DateTime<Utc>, model: Arc<StrengthModel>, mut nodes: Nodes) -> Snapshot {
        let n = nodes.ids.len();
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
        nodes.out_offsets = offsets(&self.sources);
        nodes.in_offsets = offsets(&self.targets);
        let mut in_sources = vec![0u32; self.targets.len()];
        let mut in_edges = vec![0u32; self.targets.len()];
        let mut cursor: Vec<u32> = nodes.in_offsets[..n].to_vec();
        for (edge, (target, source)) in self.targets.iter().zip(&self.sources).enumerate() {
            let slot = &mut cursor[*target as usize];
            in_sources[*slot as usize] = *source;
            in_edges[*slot as usize] = edge as u32;
            *slot += 1;
        }
        Snapshot {
            seq,
            as_of,
            model,
            nodes: Arc::new(nodes),
            topology: Arc::new(Topology { targets: self.targets, in_sources, in_edges }),
            inputs: Arc::new(Inputs {
                packed: Chunked::from_vec(self.packed),
                last: Chunked::from_vec(self.last),
                sums: Chunked::from_vec(self.sums),
                trust_commitment: Chunked::from_vec(self.trust_commitment),
                since: Chunked::from_vec(self.since),
            }),
            strengths: Arc::new(self.strengths),
        }
    }
}

fn evaluate_all(model: &StrengthModel, inputs: &Inputs, as_of: DateTime<Utc>) -> Vec<f32> {
    let at = seconds(as_of);
    (0..inputs.packed.len()).map(|edge| score_of(model, inputs, edge, at)).collect()
}

/// The strength of `edge` at `at` (in seconds), from its inputs.
fn score_of(model: &StrengthModel, inputs: &Inputs, edge: usize, at: f64) -> f32 {
    let (standing, sums) = strength_inputs(
        inputs.packed[edge],
        inputs.last[edge],
        inputs.sums[edge],
        inputs.trust_commitment[edge],
        inputs.since[edge],
    );
    model.score(&standing, &sums, at) as f32
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
                snapshot.in_entries(target).map(move |entry| {
                    let (source, edge) = snapshot.in_entry(entry);
                    (
                        snapshot.relationship(edge as usize).0,
                        snapshot.stakeholder(source).0,
                        snapshot.stakeholder(target).0,
                    )
                })
            })
            .collect();
        reverse.sort_unstable();
        assert_eq!(reverse, edges.iter().map(|edge| (edge.0, edge.1, edge.2)).collect::<Vec<_>>());
        edges
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
                &GraphScan { seq: 2, stakeholders, relationships: relationships.into_values().collect() },
                model,
                at(),
            )
            .unwrap();
            prop_assert_eq!(after.seq(), 2);
            prop_assert_eq!(after.node_count(), rebuilt.node_count());
            prop_assert_eq!(contents(&after), contents(&rebuilt));
        }
    }
}
