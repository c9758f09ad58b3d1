//! The records the API reads most, kept in memory beside the snapshot: live stakeholders by id, every
//! relationship by id, and each stakeholder's relationships. The engine builds them with the projection and
//! brings them forward with it from the change log (the rows that changed, read from the store), so a page of
//! stakeholders with their managers, relationships and counterparts is answered without a store call.
//!
//! Persistent maps (`imbl`): a new version shares everything with the previous one except the paths to what
//! changed, so applying a change costs O(log n) per record (and O(degree) for a stakeholder's list of
//! relationships when one is created), never a copy of the whole.

use crate::domain::{Relationship, RelationshipId, Stakeholder, StakeholderId};
use crate::store::{StakeholderFilter, StakeholderPage, StakeholderQuery, StakeholderSort, StoreError, INVALID_CURSOR};
use std::ops::Bound;
use std::sync::Arc;

/// One version of the records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Records {
    /// Live stakeholders, in id order (archived ones are not kept: they are rare, and the store answers for them).
    stakeholders: imbl::OrdMap<StakeholderId, Arc<Stakeholder>>,
    /// Every relationship.
    relationships: imbl::HashMap<RelationshipId, Relationship>,
    /// The relationships of each stakeholder that has any, both directions, in id order.
    of: imbl::HashMap<StakeholderId, Arc<[RelationshipId]>>,
}

impl Records {
    /// The records of these stakeholders (archived ones are left out) and relationships.
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
        Self {
            stakeholders: stakeholders
                .into_iter()
                .filter(|stakeholder| !stakeholder.is_archived())
                .map(|stakeholder| (stakeholder.id, Arc::new(stakeholder)))
                .collect(),
            relationships: relationships.into_iter().map(|relationship| (relationship.id, relationship)).collect(),
            of,
        }
    }

    /// The next version, with the current rows of the stakeholders and relationships that changed.
    pub fn apply(&self, stakeholders: &[Stakeholder], relationships: &[Relationship]) -> Self {
        let mut next = self.clone();
        for stakeholder in stakeholders {
            if stakeholder.is_archived() {
                next.stakeholders.remove(&stakeholder.id);
            } else {
                next.stakeholders.insert(stakeholder.id, Arc::new(stakeholder.clone()));
            }
        }
        for relationship in relationships {
            if next.relationships.insert(relationship.id, relationship.clone()).is_none() {
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

    /// The relationship with this id; `None` when it is unknown (ask the store).
    pub fn relationship(&self, id: RelationshipId) -> Option<&Relationship> {
        self.relationships.get(&id)
    }

    /// Every relationship of a live stakeholder, both directions, in id order; `None` when the stakeholder is
    /// archived or unknown (ask the store).
    pub fn relationships_of(&self, id: StakeholderId) -> Option<Vec<Relationship>> {
        self.stakeholders.get(&id)?;
        let Some(ids) = self.of.get(&id) else { return Some(Vec::new()) };
        ids.iter().map(|id| self.relationships.get(id).cloned()).collect()
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
        let matches = |stakeholder: &Stakeholder| {
            (kinds.is_empty() || kinds.contains(&stakeholder.kind()))
                && (markets.is_empty() || stakeholder.markets().bits() & markets.bits() != 0)
                && (statuses.is_empty()
                    || stakeholder.details.customer_status().is_some_and(|status| statuses.contains(&status)))
                && !(*exclude_private && stakeholder.private)
        };
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
        let total = query.with_total.then(|| self.stakeholders.values().filter(|row| matches(row)).count() as u64);
        Some(Ok(StakeholderPage::of(query, rows, total)))
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
