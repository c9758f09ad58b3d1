//! The SQLite store beyond the conformance suite (`conformance.rs`): a file that is reopened keeps every
//! committed write, and reopening under another strength model recomputes the kept sums.

use crate::conformance::{customer, inbound_call, knows};
use crate::support::fresh_store;
use chrono::Utc;
use stakegraph::domain::strength::{DecayedSums, StrengthModel};
use stakegraph::domain::{Channel, Command, Direction, NewInteraction, RelationshipId, Sentiment, StakeholderId};
use stakegraph::store::{GraphStore, SqliteStore};

#[tokio::test]
async fn committed_writes_survive_reopening() {
    let (store, dir) = fresh_store();
    store.apply(vec![customer("A"), customer("B"), knows(2, 1)], Utc::now()).await.unwrap();
    drop(store);
    let reopened = SqliteStore::open(dir.path().join("stakegraph.db")).unwrap();
    let counts = reopened.counts().await.unwrap();
    assert_eq!((counts.stakeholders, counts.relationships, counts.changes), (2, 1, 3));
    let found = reopened.stakeholder_by_key("B").await.unwrap().expect("B is there");
    assert_eq!(found.id, StakeholderId(2));
}

/// Reopening under another half-life recomputes the kept sums from the history.
#[tokio::test]
async fn reopening_under_another_half_life_recomputes_the_kept_sums() {
    let (store, dir) = fresh_store();
    let now = Utc::now();
    store.apply(vec![customer("A"), customer("B"), knows(1, 2)], now).await.unwrap();
    let interactions =
        [(200, Direction::Inbound), (10, Direction::Outbound)].map(|(days_ago, direction)| NewInteraction {
            relationship: RelationshipId(1),
            at: now - chrono::Duration::days(days_ago),
            channel: Channel::Meeting,
            direction,
            sentiment: Sentiment::parse(0.5).unwrap(),
            amount: None,
            product_line: None,
            note: None,
            topic: None,
            key: None,
        });
    store.apply(vec![Command::RecordInteractions(interactions.to_vec())], now).await.unwrap();
    let kept = store.relationships_by_id(&[RelationshipId(1)]).await.unwrap()[0].sums;
    let history = store.interaction_histories(&[RelationshipId(1)]).await.unwrap()[&RelationshipId(1)].clone();
    drop(store);

    let faster = StrengthModel { half_life_days: 30.0, ..StrengthModel::default() };
    let reopened = SqliteStore::open_with(dir.path().join("stakegraph.db"), faster.clone()).unwrap();
    let recomputed = reopened.relationships_by_id(&[RelationshipId(1)]).await.unwrap()[0].sums;
    let expected = DecayedSums::from_history(&faster, history.iter(), now);
    assert!((recomputed.weighted - expected.weighted).abs() < 1e-12);
    assert!((recomputed.weighted - kept.weighted).abs() > 1e-3, "a shorter half-life gives other sums");
    assert_eq!(reopened.stakeholder_by_key("B").await.unwrap().map(|found| found.id), Some(StakeholderId(2)));
}

/// The engine's in-memory records, brought forward from the change log after each write (new and changed
/// stakeholders and relationships, interactions, an archived stakeholder), equal records built afresh from the
/// store.
#[tokio::test]
async fn records_follow_every_write_as_a_rebuild_would() {
    use stakegraph::domain::{Label, StakeholderPatch};
    use stakegraph::engine::Engine;
    let (store, _dir) = fresh_store();
    let store: std::sync::Arc<dyn GraphStore> = store;
    let engine = Engine::new(store.clone(), std::sync::Arc::new(StrengthModel::default()));
    engine.load().await.unwrap();
    let interaction =
        |relationship: i64, days_ago: i64| inbound_call(relationship, Utc::now() - chrono::Duration::days(days_ago));
    let rename = |id: i64, name: &str| Command::UpdateStakeholder {
        id: StakeholderId(id),
        patch: StakeholderPatch { name: Some(Label::parse(name).unwrap()), ..StakeholderPatch::default() },
    };
    let writes: Vec<Vec<Command>> = vec![
        (0..6).map(|n| customer(&format!("K{n}"))).collect(),
        vec![knows(1, 2), knows(2, 3), knows(3, 1), knows(4, 1)],
        vec![Command::RecordInteractions(vec![interaction(1, 3), interaction(2, 1), interaction(1, 0)])],
        vec![rename(2, "Renamed Two"), knows(1, 2), knows(5, 6)],
        vec![Command::ArchiveStakeholder { id: StakeholderId(3) }],
        vec![customer("K6"), knows(7, 1), Command::RecordInteractions(vec![interaction(5, 2)])],
    ];
    for (step, commands) in writes.into_iter().enumerate() {
        store.apply(commands, Utc::now()).await.unwrap();
        engine.catch_up().await.unwrap();
        let rebuilt = Engine::new(store.clone(), std::sync::Arc::new(StrengthModel::default()));
        rebuilt.load().await.unwrap();
        let (followed, rebuilt) = (engine.records().unwrap(), rebuilt.records().unwrap());
        assert_eq!(followed, rebuilt, "after write {step}");
        assert!(!followed.is_empty());
        // Counts: the second from the version's memo, and never the previous version's.
        let counted = |records: &stakegraph::engine::Records| {
            let query = stakegraph::store::StakeholderQuery {
                filter: stakegraph::store::StakeholderFilter::default(),
                order: stakegraph::store::StakeholderOrder::default(),
                first: 2,
                after: None,
                with_total: true,
            };
            records.list(&query).unwrap().unwrap().total_count.unwrap()
        };
        let live = store.counts().await.unwrap().stakeholders - u64::from(step >= 4);
        assert_eq!((counted(&followed), counted(&followed), counted(&rebuilt)), (live, live, live), "after {step}");
    }
    let records = engine.records().unwrap();
    assert!(records.stakeholder(StakeholderId(3)).is_none(), "an archived stakeholder is left to the store");
    assert_eq!(records.stakeholder(StakeholderId(2)).unwrap().name.as_str(), "Renamed Two");
    assert_eq!(records.is_public(StakeholderId(3)), None, "archived: the store answers");
    assert_eq!(records.is_public(StakeholderId(7)), Some(true));
    assert_eq!(records.is_public(StakeholderId(70_000)), None, "unknown");
    let of_one: Vec<i64> =
        records.relationships_of_where(StakeholderId(1), |_| true).unwrap().iter().map(|r| r.id.0).collect();
    assert_eq!(of_one, [1, 3, 4, 6], "both directions, in id order");
}
