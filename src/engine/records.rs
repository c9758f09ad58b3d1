//! The records the API reads most, kept in memory beside the snapshot: live stakeholders by id, every
//! relationship by id, and each stakeholder's relationships. The engine builds them with the projection and
//! brings them forward with it from the change log (the rows that changed, read from the store), so a page of
//! stakeholders with their managers, relationships and counterparts is answered without a store call.
//!
//! Persistent maps (`imbl`): a new version shares everything with the previous one except the paths to what
//! changed, so applying a change costs O(log n) per record (and O(degree) for a stakeholder's list of
//! relationships when one is created), never a copy of the whole.

use super::aggregates::{tally_stakeholders, StakeholderTally};
use super::exits::{exit_report, CustomerCriteria, ExitReport};
use super::programs::{member_counts, program_retention, ProgramRetention};
use crate::domain::{ProgramId, Relationship, RelationshipId, RelationshipType, Stakeholder, StakeholderId};
use crate::store::{StakeholderFilter, StakeholderPage, StakeholderQuery, StakeholderSort, StoreError, INVALID_CURSOR};
use chrono::NaiveDate;
use std::ops::Bound;
use std::sync::Arc;

/// One version of the records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Records {
    /// Live stakeholders, in id order.
    stakeholders: imbl::OrdMap<StakeholderId, Arc<Stakeholder>>,
    /// Archived stakeholders, in id order: only aggregates that include them read these (lookups and listings of
    /// archived stakeholders go to the store).
    archived: imbl::OrdMap<StakeholderId, Arc<Stakeholder>>,
    /// Every relationship, each behind its own `Arc`: a version that changes a relationship copies the map's node on
    /// the path to it, and a node of pointers is a tenth of a node of relationships (a batch of 1,000 interactions
    /// on random relationships copies 1,000 such nodes).
    relationships: imbl::HashMap<RelationshipId, Arc<Relationship>>,
    /// The relationships of each stakeholder that has any, both directions, in id order.
    of: imbl::HashMap<StakeholderId, Arc<[RelationshipId]>>,
    /// Bit `i` is set when stakeholder `i` is live and public, for ids below [`PUBLIC_BITS_IDS`]: whether a viewer
    /// may see a relationship's end is then one memory read, not a map lookup (a hub has thousands of ends).
    public: Arc<Vec<u64>>,
    /// The `totalCount` of each listing counted on this version so far (a count walks every live stakeholder).
    counted: VersionMemo<ListingKey, u64, COUNTS_KEPT>,
    /// The aggregates of each listing tallied on this version so far, by its filter.
    tallied: VersionMemo<String, Arc<StakeholderTally>, TALLIES_KEPT>,
    /// The live stakeholders counted per market on this version, by whether private ones were left out.
    by_market: VersionMemo<bool, Arc<Vec<StakeholderTally>>, 2>,
    /// The exit analyses computed on this version so far, by criteria and period.
    exits: VersionMemo<(CustomerCriteria, NaiveDate, NaiveDate), Arc<ExitReport>, TALLIES_KEPT>,
    /// The programme retentions computed on this version so far, by programme, period and whether private
    /// customers are left out.
    retentions: VersionMemo<(ProgramId, NaiveDate, NaiveDate, bool), Arc<ProgramRetention>, TALLIES_KEPT>,
    /// Every programme's members on a day, counted on this version so far, by day and whether private customers
    /// are left out.
    members: VersionMemo<(NaiveDate, bool), Arc<std::collections::HashMap<ProgramId, u64>>, TALLIES_KEPT>,
}

/// Ids tracked in [`Records`]' bit set of public stakeholders (8 MiB at most); larger ids are looked up in the map.
const PUBLIC_BITS_IDS: i64 = 1 << 26;

/// Sets or clears the bit of `id` in `bits`, growing it as needed (ids past [`PUBLIC_BITS_IDS`] are not tracked).
fn mark_public(bits: &mut Vec<u64>, id: StakeholderId, public: bool) {
    let Ok(index) = usize::try_from(id.0) else { return };
    if id.0 >= PUBLIC_BITS_IDS {
        return;
    }
    let (word, bit) = (index / 64, index % 64);
    if word >= bits.len() {
        if !public {
            return;
        }
        bits.resize(word + 1, 0);
    }
    if public {
        bits[word] |= 1 << bit;
    } else {
        bits[word] &= !(1 << bit);
        // No trailing zero words, so that versions holding the same stakeholders hold the same bits.
        while bits.last() == Some(&0) {
            bits.pop();
        }
    }
}

/// What a listing the records answer filters on: kinds, markets and customer statuses as bit masks, and whether
/// private stakeholders are left out.
type ListingKey = (u8, u8, u16, bool);

/// Results remembered for one version of the records, by key; a new version (a clone) starts with none, so a
/// result is never stale, and two versions compare equal whatever they remember. At most `bound` entries: past
/// it, all are forgotten (keys may be countless, as searches are).
#[derive(Debug)]
struct VersionMemo<K, V, const BOUND: usize>(Arc<std::sync::Mutex<std::collections::HashMap<K, V>>>);

impl<K, V, const BOUND: usize> VersionMemo<K, V, BOUND> {
    /// The same memo, for a version whose stakeholders are the same (cloning gives an empty one).
    fn shared(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<K: std::hash::Hash + Eq, V: Clone, const BOUND: usize> VersionMemo<K, V, BOUND> {
    fn entries(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<K, V>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, key: &K) -> Option<V> {
        self.entries().get(key).cloned()
    }

    fn put(&self, key: K, value: V) {
        let mut entries = self.entries();
        if entries.len() >= BOUND {
            entries.clear();
        }
        entries.insert(key, value);
    }
}

impl<K, V, const BOUND: usize> Default for VersionMemo<K, V, BOUND> {
    fn default() -> Self {
        Self(Default::default())
    }
}

impl<K, V, const BOUND: usize> Clone for VersionMemo<K, V, BOUND> {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl<K, V, const BOUND: usize> PartialEq for VersionMemo<K, V, BOUND> {
    /// A memo: never part of what the records hold.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// Listing counts one version of the records keeps at most (their keys are bit masks: a few thousand at most).
const COUNTS_KEPT: usize = 1 << 16;

/// Aggregates one version of the records keeps at most.
const TALLIES_KEPT: usize = 256;

impl Records {
    /// The records of these stakeholders and relationships.
    pub fn new(stakeholders: Vec<Stakeholder>, relationships: Vec<Relationship>) -> Self {
        let mut ends: std::collections::HashMap<StakeholderId, Vec<RelationshipId>> = Default::default();
        for relationship in &relationships {
            ends.entry(relationship.from).or_default().push(relationship.id);
            ends.entry(relationship.to).or_default().push(relationship.id);
        }
        let of = ends
            .into_iter()
            .map(|(id, mut list)| {
                list.sort_unstable();
                list.dedup();
                (id, Arc::from(list))
            })
            .collect();
        let (archived, stakeholders): (Vec<Stakeholder>, Vec<Stakeholder>) =
            stakeholders.into_iter().partition(Stakeholder::is_archived);
        let by_id = |rows: Vec<Stakeholder>| -> imbl::OrdMap<StakeholderId, Arc<Stakeholder>> {
            rows.into_iter().map(|stakeholder| (stakeholder.id, Arc::new(stakeholder))).collect()
        };
        let stakeholders = by_id(stakeholders);
        let mut public = Vec::new();
        for stakeholder in stakeholders.values() {
            mark_public(&mut public, stakeholder.id, !stakeholder.private);
        }
        Self {
            stakeholders,
            archived: by_id(archived),
            relationships: relationships
                .into_iter()
                .map(|relationship| (relationship.id, Arc::new(relationship)))
                .collect(),
            of,
            public: Arc::new(public),
            counted: VersionMemo::default(),
            tallied: VersionMemo::default(),
            by_market: VersionMemo::default(),
            exits: VersionMemo::default(),
            retentions: VersionMemo::default(),
            members: VersionMemo::default(),
        }
    }

    /// The next version, with the current rows of the stakeholders and relationships that changed.
    pub fn apply(&self, stakeholders: &[Stakeholder], relationships: &[Relationship]) -> Self {
        let mut next = self.clone();
        if stakeholders.is_empty() {
            // Listing counts and tallies read only the stakeholders' records: a change of relationships alone
            // leaves them true (exit analyses filter by manager, through MANAGES relationships: not those).
            next.counted = self.counted.shared();
            next.tallied = self.tallied.shared();
            next.by_market = self.by_market.shared();
        }
        for stakeholder in stakeholders {
            let public = !stakeholder.is_archived() && !stakeholder.private;
            mark_public(Arc::make_mut(&mut next.public), stakeholder.id, public);
            let (into, from) = if stakeholder.is_archived() {
                (&mut next.archived, &mut next.stakeholders)
            } else {
                (&mut next.stakeholders, &mut next.archived)
            };
            from.remove(&stakeholder.id);
            into.insert(stakeholder.id, Arc::new(stakeholder.clone()));
        }
        for relationship in relationships {
            if next.relationships.insert(relationship.id, Arc::new(relationship.clone())).is_none() {
                for end in [relationship.from, relationship.to] {
                    let mut list: Vec<RelationshipId> = next.of.get(&end).map(|list| list.to_vec()).unwrap_or_default();
                    if let Err(at) = list.binary_search(&relationship.id) {
                        list.insert(at, relationship.id);
                    }
                    next.of.insert(end, Arc::from(list));
                }
            }
        }
        next
    }

    /// The live stakeholder with this id; `None` when it is archived or unknown (ask the store).
    pub fn stakeholder(&self, id: StakeholderId) -> Option<&Arc<Stakeholder>> {
        self.stakeholders.get(&id)
    }

    /// Whether the stakeholder with this id is public: `Some(true)` public and live, `Some(false)` private and live,
    /// `None` archived or unknown (ask the store).
    pub fn is_public(&self, id: StakeholderId) -> Option<bool> {
        let set = usize::try_from(id.0)
            .ok()
            .and_then(|index| self.public.get(index / 64).map(|word| word >> (index % 64) & 1 == 1));
        match set {
            Some(true) => Some(true),
            _ => self.stakeholders.get(&id).map(|stakeholder| !stakeholder.private),
        }
    }

    /// Whether a viewer (who sees no private stakeholder) may see the stakeholder with this id: live and public,
    /// or archived and public (as the store would say); `false` when unknown.
    pub fn is_public_or_archived_public(&self, id: StakeholderId) -> bool {
        self.is_public(id).unwrap_or_else(|| self.archived.get(&id).is_some_and(|stakeholder| !stakeholder.private))
    }

    /// The relationships of a live stakeholder, both directions, in id order, borrowed; `None` when the stakeholder
    /// is archived or unknown (ask the store).
    pub fn relationships_of(&self, id: StakeholderId) -> Option<impl Iterator<Item = &Relationship> + '_> {
        self.stakeholders.get(&id)?;
        let ids = self.of.get(&id).map(|ids| &ids[..]).unwrap_or_default();
        Some(ids.iter().filter_map(|id| self.relationships.get(id).map(Arc::as_ref)))
    }

    /// The relationship with this id; `None` when it is unknown (ask the store).
    pub fn relationship(&self, id: RelationshipId) -> Option<&Relationship> {
        self.relationships.get(&id).map(Arc::as_ref)
    }

    /// The relationships of a live stakeholder that satisfy `wanted`, both directions, in id order (only those
    /// are copied: a hub's thousands of relationships are looked at, not cloned); `None` when the stakeholder is
    /// archived or unknown (ask the store).
    pub fn relationships_of_where(
        &self,
        id: StakeholderId,
        wanted: impl Fn(&Relationship) -> bool,
    ) -> Option<Vec<Relationship>> {
        Some(self.relationships_of(id)?.filter(|relationship| wanted(relationship)).cloned().collect())
    }

    /// The page `query` asks for, when the records answer it exactly as the store would: live stakeholders in id
    /// order, either way, filtered by kind, market, customer status and privacy, counted when asked. `None` for
    /// anything else (another order, a search, Mendelow quadrants, archived stakeholders, a cursor on a row they
    /// do not hold): the store answers then. A cursor on a private row of a listing that leaves private rows out
    /// is refused as the store refuses it ([`StakeholderQuery::check_cursor`]).
    pub fn list(&self, query: &StakeholderQuery) -> Option<Result<StakeholderPage, StoreError>> {
        // Every criterion named, so that a new one cannot be ignored here.
        let StakeholderFilter { kinds, markets, search, statuses, mendelow, include_archived, exclude_private } =
            &query.filter;
        if search.is_some() || !mendelow.is_empty() || *include_archived || query.order.field != StakeholderSort::Id {
            return None;
        }
        let descending = query.order.descending;
        let after = match &query.after {
            None => None,
            Some(cursor) => {
                if cursor.sort != query.order.field || cursor.descending != descending {
                    return None;
                }
                let row = self.stakeholders.get(&cursor.id)?;
                if *exclude_private && row.private {
                    return Some(Err(StoreError::InvalidCursor(INVALID_CURSOR.into())));
                }
                Some(cursor.id)
            }
        };
        let matches = |stakeholder: &Stakeholder| query.filter.matches(stakeholder);
        let wanted = query.first + 1;
        let rows: Vec<Stakeholder> = match (after, descending) {
            (None, false) => take(self.stakeholders.values(), matches, wanted),
            (None, true) => take(self.stakeholders.values().rev(), matches, wanted),
            (Some(id), false) => {
                let range = self.stakeholders.range((Bound::Excluded(id), Bound::Unbounded)).map(|(_, row)| row);
                take(range, matches, wanted)
            }
            (Some(id), true) => take(self.stakeholders.range(..id).rev().map(|(_, row)| row), matches, wanted),
        };
        let total = query.with_total.then(|| {
            let key: ListingKey = (
                kinds.iter().fold(0, |bits, kind| bits | 1 << *kind as u8),
                markets.bits(),
                statuses.iter().fold(0, |bits, status| bits | 1 << *status as u8),
                *exclude_private,
            );
            if let Some(total) = self.counted.get(&key) {
                return total;
            }
            let total = self.stakeholders.values().filter(|row| matches(row)).count() as u64;
            self.counted.put(key, total);
            total
        });
        Some(Ok(StakeholderPage::of(query, rows, total)))
    }

    /// The live stakeholders of each market ([`Market::ALL`] order), private ones left out when `exclude_private`:
    /// what `aggregate` gives for a listing filtered by one market, for all six in one pass, once per version. O(n).
    pub fn market_tallies(&self, exclude_private: bool) -> Arc<Vec<StakeholderTally>> {
        if let Some(found) = self.by_market.get(&exclude_private) {
            return found;
        }
        let rows = self.stakeholders.values().map(|row| &**row).filter(|row| !(exclude_private && row.private));
        let tallies = Arc::new(super::aggregates::tally_by_market(rows));
        self.by_market.put(exclude_private, tallies.clone());
        tallies
    }

    /// The aggregates of `filter` if this version already tallied them (a lookup, no counting).
    pub fn aggregated(&self, filter: &StakeholderFilter) -> Option<Arc<StakeholderTally>> {
        self.tallied.get(&format!("{filter:?}"))
    }

    /// The aggregates of the stakeholders `filter` lists (archived ones too when it includes them), tallied once
    /// per version of the records. O(n) the first time.
    pub fn aggregate(&self, filter: &StakeholderFilter) -> Arc<StakeholderTally> {
        let key = format!("{filter:?}");
        if let Some(found) = self.tallied.get(&key) {
            return found;
        }
        let archived = filter.include_archived.then(|| self.archived.values()).into_iter().flatten();
        let rows = self.stakeholders.values().chain(archived).map(|row| &**row).filter(|row| filter.matches(row));
        let tally = Arc::new(tally_stakeholders(rows));
        self.tallied.put(key, tally.clone());
        tally
    }

    /// The exit analysis of the customers `criteria` admits over `[from, to)` if this version already computed it.
    pub fn exit_reported(
        &self,
        criteria: &CustomerCriteria,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Option<Arc<ExitReport>> {
        self.exits.get(&(criteria.clone(), from, to))
    }

    /// The exit analysis of the customers `criteria` admits over `[from, to)` (`from < to`), computed once per
    /// version of the records: O(n + c log m) for n stakeholders, c customers and m months the first time.
    pub fn exit_report(&self, criteria: &CustomerCriteria, from: NaiveDate, to: NaiveDate) -> Arc<ExitReport> {
        let key = (criteria.clone(), from, to);
        if let Some(found) = self.exits.get(&key) {
            return found;
        }
        let customers = self.customers(criteria);
        let rows = customers.iter().map(|row| &**row);
        let report = Arc::new(exit_report(rows, from, to));
        self.exits.put(key, report.clone());
        report
    }

    /// The retention of `program` over `[from, to)` (`from < to`) if this version already computed it.
    pub fn program_retained(
        &self,
        program: ProgramId,
        from: NaiveDate,
        to: NaiveDate,
        hide_private: bool,
    ) -> Option<Arc<ProgramRetention>> {
        self.retentions.get(&(program, from, to, hide_private))
    }

    /// The retention of `program` over `[from, to)` (`from < to`) among the live customers (the public ones when
    /// `hide_private`), computed once per version of the records: O(n + c · (e + p)) the first time.
    pub fn program_retention(
        &self,
        program: ProgramId,
        from: NaiveDate,
        to: NaiveDate,
        hide_private: bool,
    ) -> Arc<ProgramRetention> {
        let key = (program, from, to, hide_private);
        if let Some(found) = self.retentions.get(&key) {
            return found;
        }
        let customers = self.customers(&CustomerCriteria { hide_private, ..CustomerCriteria::default() });
        let report = Arc::new(program_retention(customers.iter().map(|row| &**row), program, from, to));
        self.retentions.put(key, report.clone());
        report
    }

    /// Every programme's members on `day` if this version already counted them.
    pub fn program_members_counted(
        &self,
        day: NaiveDate,
        hide_private: bool,
    ) -> Option<Arc<std::collections::HashMap<ProgramId, u64>>> {
        self.members.get(&(day, hide_private))
    }

    /// How many live customers (the public ones when `hide_private`) are members of each programme on `day`,
    /// counted once per version of the records: O(n + c · p) the first time.
    pub fn program_members(
        &self,
        day: NaiveDate,
        hide_private: bool,
    ) -> Arc<std::collections::HashMap<ProgramId, u64>> {
        let key = (day, hide_private);
        if let Some(found) = self.members.get(&key) {
            return found;
        }
        let customers = self.customers(&CustomerCriteria { hide_private, ..CustomerCriteria::default() });
        let counts = Arc::new(member_counts(customers.iter().map(|row| &**row), day));
        self.members.put(key, counts.clone());
        counts
    }

    /// The customers `criteria` admits, in id order (archived ones when it includes them). O(n).
    pub fn customers(&self, criteria: &CustomerCriteria) -> Vec<Arc<Stakeholder>> {
        let managed = criteria.manager.map(|manager| self.managed_by(manager));
        let archived = criteria.include_archived.then(|| self.archived.values()).into_iter().flatten();
        self.stakeholders
            .values()
            .chain(archived)
            .filter(|row| criteria.admits(row, managed.as_ref()))
            .cloned()
            .collect()
    }

    /// The stakeholders `manager` manages (the ends of its MANAGES relationships).
    pub fn managed_by(&self, manager: StakeholderId) -> std::collections::HashSet<StakeholderId> {
        let Some(ids) = self.of.get(&manager) else { return Default::default() };
        ids.iter()
            .filter_map(|id| self.relationships.get(id))
            .filter(|relationship| relationship.rel_type == RelationshipType::Manages && relationship.from == manager)
            .map(|relationship| relationship.to)
            .collect()
    }

    /// How many live stakeholders and relationships it holds.
    pub fn len(&self) -> (usize, usize) {
        (self.stakeholders.len(), self.relationships.len())
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.stakeholders.is_empty() && self.relationships.is_empty()
    }
}

/// The first `wanted` of `rows` that match.
fn take<'a>(
    rows: impl Iterator<Item = &'a Arc<Stakeholder>>,
    matches: impl Fn(&Stakeholder) -> bool,
    wanted: usize,
) -> Vec<Stakeholder> {
    rows.filter(|row| matches(row)).take(wanted).map(|row| Stakeholder::clone(row)).collect()
}
