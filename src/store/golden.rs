//! Golden files of what the stores keep as JSON: a stakeholder's `record` (both backends keep the same text) and
//! each kind of change event's payload, written and read through `store::record`, with the `changedFields` the API
//! reads from each payload. They pin the stored format byte for byte: a change to `store::record` that would
//! silently change what is written to the database, or how what earlier versions wrote is read, fails here first.
//! Such a change needs a new stored version (`store::record` says how) or a migration, not a new golden file.
//!
//! To write the files again after a deliberate change: `STAKEGRAPH_BLESS=1 cargo test --lib golden`.

use crate::domain::program::Membership;
use crate::domain::strength::DecayedSums;
use crate::domain::*;
use crate::store::record;
use chrono::{DateTime, NaiveDate, Utc};

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_780_000_000 + seconds, 0).unwrap()
}

fn day(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

fn label(text: &str) -> Label {
    Label::parse(text).unwrap()
}

fn amount(value: f64) -> Amount {
    Amount::parse(value).unwrap()
}

/// One stakeholder of each kind, every field set.
fn stakeholders() -> Vec<Stakeholder> {
    let customer = CustomerDetails {
        status: CustomerStatus::AtRisk,
        segment: Some(label("Enterprise")),
        lifetime_value: Some(amount(125_000.5)),
        exit: Some(CustomerExit { reason: ExitReason::Price, date: day("2025-03-01") }),
        perceived_value: Some(PerceivedValue {
            core_value: amount(900.0),
            services_value: amount(150.0),
            price: amount(700.0),
            relationship_costs: amount(80.0),
        }),
        since: Some(day("2023-01-15")),
        lifecycle: vec![
            LifecycleEvent::Exit { reason: ExitReason::Price, date: day("2025-03-01") },
            LifecycleEvent::WinBack { date: day("2025-06-01") },
        ],
        retention_cost: Some(amount(1_200.0)),
        memberships: vec![Membership {
            program: ProgramId(2),
            joined: day("2024-02-01"),
            left: Some(day("2025-01-01")),
        }],
    };
    let kinds = [
        KindDetails::Customer(customer),
        KindDetails::Supplier { category: Some(label("Flour")) },
        KindDetails::Distributor { channel: Some(label("Wholesale")), region: Some(label("North")) },
        KindDetails::Employee {
            role: Some(label("Account manager")),
            department: Some(label("Sales")),
            candidate: true,
        },
        KindDetails::Media { outlet: Some(label("Harbour Times")), reach: Some(250_000) },
        KindDetails::Government { agency: Some(label("Food Agency")), jurisdiction: Some(label("National")) },
    ];
    kinds
        .into_iter()
        .enumerate()
        .map(|(index, details)| Stakeholder {
            id: StakeholderId(index as i64 + 1),
            key: label(&format!("KEY-{index}")),
            name: label(&format!("Name \"{index}\", ü")),
            power: Probability::parse(0.75).unwrap(),
            interest: Probability::parse(0.25).unwrap(),
            private: index % 2 == 1,
            extra_markets: MarketSet::of([Market::Referral, Market::Influence]),
            details,
            created_at: at(0),
            updated_at: at(60),
            archived_at: (index == 5).then(|| at(120)),
        })
        .collect()
}

fn relationship() -> Relationship {
    Relationship {
        id: RelationshipId(7),
        from: StakeholderId(4),
        to: StakeholderId(1),
        rel_type: RelationshipType::Manages,
        level: Level::Partnership,
        bonds: BondSet::of([Bond::Social, Bond::Structural]),
        trust: Some(Probability::parse(0.8).unwrap()),
        commitment: Some(Probability::parse(0.6).unwrap()),
        since: at(-86_400),
        basis: Some(Basis::ALL[0]),
        created_at: at(0),
        updated_at: at(30),
        sums: DecayedSums {
            weighted: 1.5,
            inbound: 0.5,
            outbound: 1.0,
            sentiment: 0.25,
            t_ref: 1_780_000_000.0,
            last: Some(1_780_000_030.0),
        },
    }
}

fn interaction() -> Interaction {
    Interaction {
        id: InteractionId(11),
        relationship: RelationshipId(7),
        at: at(30),
        channel: Channel::Meeting,
        direction: Direction::Inbound,
        sentiment: Sentiment::parse(0.5).unwrap(),
        amount: Some(amount(99.5)),
        product_line: Some(label("Bread")),
        topic: Some(Topic::ALL[0]),
        note: Some("Quarterly review, \"good\"".into()),
        key: Some(label("msg-1@example.com")),
    }
}

/// One event of each shape the stores log.
fn events() -> Vec<PendingEvent> {
    let people = stakeholders();
    let customer = &people[0];
    let mut changed = customer.clone();
    if let KindDetails::Customer(details) = &mut changed.details {
        details.status = CustomerStatus::Active;
        details.segment = Some(label("Mid-market"));
    }
    changed.name = label("Renamed");
    let program = program::Program {
        id: ProgramId(2),
        key: label("CLUB"),
        name: label("Bakers' club"),
        kind: ProgramKind::ALL[0],
        markets: MarketSet::of([Market::Customer]),
        created_at: at(0),
    };
    let before = relationship();
    let mut after = before.clone();
    after.level = Level::ALL[0];
    after.trust = None;
    vec![
        PendingEvent::stakeholder(ChangeKind::StakeholderCreated, None, customer),
        PendingEvent::stakeholder(ChangeKind::StakeholderUpdated, Some(customer), &changed),
        PendingEvent::program_created(&program),
        PendingEvent::membership(ChangeKind::ProgramJoined, ProgramId(2), day("2024-02-01"), customer, &changed),
        PendingEvent::relationship(None, &before),
        PendingEvent::relationship(Some(&before), &after),
        PendingEvent::interactions(&before, &[&interaction()]),
    ]
}

/// Compares `lines` with golden file `name` (or writes it, when blessing).
fn golden(name: &str, lines: &[String]) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store/golden").join(name);
    let text = lines.iter().map(|line| format!("{line}\n")).collect::<String>();
    if std::env::var_os("STAKEGRAPH_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let stored = std::fs::read_to_string(&path).unwrap_or_default();
    for (number, (ours, golden)) in text.lines().zip(stored.lines()).enumerate() {
        assert_eq!(ours, golden, "{name}:{}: the stored format changed (see src/store/golden.rs)", number + 1);
    }
    assert_eq!(text.lines().count(), stored.lines().count(), "{name}: a different number of records");
}

#[test]
fn stakeholder_records_are_written_and_read_as_their_golden_file() {
    let people = stakeholders();
    let lines: Vec<String> = people.iter().map(|person| record::write_stakeholder(person).unwrap()).collect();
    golden("stakeholders_v1.jsonl", &lines);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/store/golden/stakeholders_v1.jsonl");
    let read: Vec<Stakeholder> =
        std::fs::read_to_string(path).unwrap().lines().map(|line| record::read_stakeholder(line).unwrap()).collect();
    assert_eq!(read, people, "what earlier versions wrote is read as it was");
}

#[test]
fn change_payloads_and_the_fields_the_api_reads_from_them_are_their_golden_files() {
    let events = events();
    let lines: Vec<String> = events
        .iter()
        .map(|event| {
            let payload = record::change_json(&event.payload).unwrap();
            assert_eq!(payload.to_string(), record::write_change(&event.payload).unwrap());
            serde_json::json!({ "kind": event.kind, "payload": payload }).to_string()
        })
        .collect();
    golden("changes_v1.jsonl", &lines);
    // The store reads the stored payloads (these, as earlier versions wrote them) as they were written, and the API
    // reads `changedFields` from what the store read.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/store/golden/changes_v1.jsonl");
    let fields: Vec<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .zip(&events)
        .enumerate()
        .map(|(seq, (line, written))| {
            let stored: serde_json::Value = serde_json::from_str(line).unwrap();
            let kind: ChangeKind = serde_json::from_value(stored["kind"].clone()).unwrap();
            let payload = record::read_change(kind, &stored["payload"].to_string()).unwrap();
            assert_eq!(kind, written.kind);
            assert_eq!(payload, written.payload, "line {} is read as it was written", seq + 1);
            let event = ChangeEvent {
                seq: seq as i64 + 1,
                at: at(0),
                kind,
                stakeholders: Vec::new(),
                relationship: None,
                payload,
            };
            serde_json::to_string(&crate::api::change_fields::field_changes(&event)).unwrap()
        })
        .collect();
    golden("changed_fields_v1.jsonl", &fields);
}
