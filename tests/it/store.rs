//! The SQLite store: atomic batches, the change log, persistence.

use crate::support::fresh_store;
use chrono::Utc;
use stakegraph::domain::{
    Command, CustomerDetails, CustomerStatus, KindDetails, Label, MarketSet, NewStakeholder, Probability,
    RelationshipType, RelationshipUpsert, StakeholderId,
};
use stakegraph::store::{GraphStore, Rejection, SqliteStore, StoreError};

fn customer(key: &str) -> Command {
    Command::CreateStakeholder(NewStakeholder {
        key: Label::parse(key).unwrap(),
        name: Label::parse(&format!("Customer {key}")).unwrap(),
        power: Probability::parse(0.4).unwrap(),
        interest: Probability::parse(0.6).unwrap(),
        private: false,
        extra_markets: MarketSet::EMPTY,
        details: KindDetails::Customer(CustomerDetails {
            status: CustomerStatus::Active,
            segment: None,
            lifetime_value: None,
            exit: None,
        }),
    })
}

fn knows(from: i64, to: i64) -> Command {
    Command::UpsertRelationship(RelationshipUpsert {
        from: StakeholderId(from),
        to: StakeholderId(to),
        rel_type: RelationshipType::Knows,
        level: None,
        bonds: None,
        trust: None,
        commitment: None,
        since: None,
        basis: None,
    })
}

#[tokio::test]
async fn a_batch_is_all_or_nothing() {
    let (store, _dir) = fresh_store();
    let error = store.apply(vec![customer("A"), customer("B"), customer("A")], Utc::now()).await.unwrap_err();
    match error {
        StoreError::Rejected { command, field, reason, .. } => {
            assert_eq!((command, field.as_str(), reason), (2, "key", Rejection::Conflict));
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    let counts = store.counts().await.unwrap();
    assert_eq!((counts.stakeholders, counts.changes), (0, 0), "nothing of a refused batch stays");
}

#[tokio::test]
async fn every_change_is_logged_in_order_with_increasing_sequence_numbers() {
    let (store, _dir) = fresh_store();
    let applied = store.apply(vec![customer("A"), customer("B"), knows(1, 2)], Utc::now()).await.unwrap();
    assert_eq!(applied.events.len(), 3);
    let again = store.apply(vec![knows(1, 2)], Utc::now()).await.unwrap();
    assert_eq!(again.events[0].kind.as_str(), "RELATIONSHIP_UPDATED", "an upsert of an existing edge updates it");
    let log = store.changes_after(0, 100).await.unwrap();
    let seqs: Vec<i64> = log.iter().map(|event| event.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    assert_eq!(store.changes_after(2, 1).await.unwrap()[0].seq, 3, "paging by cursor");
    assert_eq!(log[2].stakeholders, [StakeholderId(1), StakeholderId(2)]);
    let relationships = store.relationships_of(&[StakeholderId(1), StakeholderId(2)]).await.unwrap();
    assert_eq!(relationships[&StakeholderId(1)].len(), 1);
    assert_eq!(relationships[&StakeholderId(2)].len(), 1, "both ends see the relationship");
}

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

#[tokio::test]
async fn self_loops_and_missing_ends_are_refused() {
    let (store, _dir) = fresh_store();
    store.apply(vec![customer("A")], Utc::now()).await.unwrap();
    let error = store.apply(vec![knows(1, 1)], Utc::now()).await.unwrap_err();
    assert!(matches!(error, StoreError::Rejected { ref field, .. } if field == "to"), "{error:?}");
    let error = store.apply(vec![knows(1, 77)], Utc::now()).await.unwrap_err();
    assert!(
        matches!(error, StoreError::Rejected { ref field, reason: Rejection::NotFound, .. } if field == "to"),
        "{error:?}"
    );
}

/// The decayed sums the store keeps as interactions arrive (in any order, back-filled ones included) equal the
/// sums rebuilt from the whole history; reopening under another half-life recomputes them.
#[tokio::test]
async fn kept_decayed_sums_equal_a_recomputation_from_the_history() {
    use stakegraph::domain::strength::{DecayedSums, StrengthModel};
    use stakegraph::domain::{Channel, Direction, NewInteraction, RelationshipId, Sentiment};
    let (store, dir) = fresh_store();
    let now = Utc::now();
    store.apply(vec![customer("A"), customer("B"), knows(1, 2)], now).await.unwrap();
    let interaction = |days_ago: i64, channel: Channel, direction: Direction, sentiment: f64| NewInteraction {
        relationship: RelationshipId(1),
        at: now - chrono::Duration::days(days_ago) - chrono::Duration::milliseconds(days_ago * 7919),
        channel,
        direction,
        sentiment: Sentiment::parse(sentiment).unwrap(),
        amount: None,
        product_line: None,
        note: None,
    };
    // Three batches: recent first, then older ones back-filled, then one newer than all.
    let batches = [
        vec![interaction(10, Channel::Meeting, Direction::Outbound, 0.5)],
        vec![
            interaction(200, Channel::Email, Direction::Inbound, -0.3),
            interaction(40, Channel::Call, Direction::Inbound, 0.9),
        ],
        vec![interaction(1, Channel::Social, Direction::Outbound, 0.0)],
    ];
    for batch in batches {
        store.apply(vec![Command::RecordInteractions(batch)], now).await.unwrap();
    }
    let kept = store.relationships_by_id(&[RelationshipId(1)]).await.unwrap()[0].sums;
    let history = store.interaction_histories(&[RelationshipId(1)]).await.unwrap()[&RelationshipId(1)].clone();
    let model = StrengthModel::default();
    let rebuilt = DecayedSums::from_history(&model, history.iter(), now);
    assert_eq!(history.len(), 4);
    assert_eq!(kept.last, rebuilt.last);
    for (kept, rebuilt) in [
        (kept.weighted, rebuilt.weighted),
        (kept.inbound, rebuilt.inbound),
        (kept.outbound, rebuilt.outbound),
        (kept.sentiment, rebuilt.sentiment),
    ] {
        assert!((kept - rebuilt).abs() < 1e-12, "kept {kept} vs rebuilt {rebuilt}");
    }
    assert!(kept.inbound > 0.0 && kept.outbound > 0.0);

    drop(store);
    let faster = StrengthModel { half_life_days: 30.0, ..StrengthModel::default() };
    let reopened = SqliteStore::open_with(dir.path().join("stakegraph.db"), faster.clone()).unwrap();
    let recomputed = reopened.relationships_by_id(&[RelationshipId(1)]).await.unwrap()[0].sums;
    let expected = DecayedSums::from_history(&faster, history.iter(), now);
    assert!((recomputed.weighted - expected.weighted).abs() < 1e-12);
    assert!((recomputed.weighted - kept.weighted).abs() > 1e-3, "a shorter half-life gives other sums");
}
