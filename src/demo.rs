//! The deterministic demo-graph generator: a plausible six-market stakeholder graph (customers, employees,
//! suppliers, distributors, media, government) with relationships, two years of interactions, customer exits and
//! relationship-marketing programmes with their members.
//!
//! Everything is drawn from one seeded ChaCha8 stream and dated relative to `anchor`, so the same size, seed and
//! anchor give the same graph; nothing reads the clock or iterates a hash map. The graph is planned in memory by
//! position, then written through [`GraphStore::apply`] in large batches, taking ids from the outcomes.

use crate::domain::{
    Amount, Basis, Bond, BondSet, Channel, Command, CustomerDetails, CustomerExit, CustomerStatus, Direction,
    ExitReason, KindDetails, Label, Level, Market, MarketSet, NewInteraction, NewProgram, NewStakeholder, Outcome,
    PerceivedValue, Probability, ProgramId, ProgramKind, RelationshipId, RelationshipType, RelationshipUpsert,
    Sentiment, StakeholderId, StakeholderKind, Topic,
};
use crate::store::{GraphStore, StoreError};
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, HashSet};
use words::{KEY_ROLES, PRODUCT_LINES, ROLES};

/// The smallest demo graph: below it some kinds would have no member.
pub const MIN_SIZE: usize = 50;
const STAKEHOLDER_BATCH: usize = 5_000;
const RELATIONSHIP_BATCH: usize = 5_000;
/// Interactions per `RecordInteractions` command; each such command is a transaction of its own.
const INTERACTION_BATCH: usize = 20_000;
const EXIT_BATCH: usize = 5_000;
const MEMBERSHIP_BATCH: usize = 5_000;
/// Interactions fall in this many days before the anchor.
const HISTORY_DAYS: i64 = 730;
const MAX_INTERACTIONS: usize = 30;
/// Indices into [`words::ROLES`] of the roles the wiring relies on.
const ACCOUNT_MANAGER: usize = 0;
const PROCUREMENT_LEAD: usize = 1;
const CHANNEL_MANAGER: usize = 2;
const PRESS_OFFICER: usize = 3;
const COMPLIANCE_OFFICER: usize = 4;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoOptions {
    /// How many stakeholders (at least [`MIN_SIZE`]).
    pub size: usize,
    /// Seed of the random stream; the same size, seed and anchor give the same graph.
    pub seed: u64,
    /// The demo's "now": every date is derived from it and no interaction is after it.
    pub anchor: DateTime<Utc>,
    /// At least this many relationships: the wired business network (about 2.6 per stakeholder) is topped up
    /// with acquaintances (KNOWS, and REFERS between customers) until it has this many. `None`: no top-up.
    pub relationships: Option<usize>,
}

impl DemoOptions {
    /// Options for `size` stakeholders dated relative to `anchor`, with seed 42.
    pub fn new(size: usize, anchor: DateTime<Utc>) -> Self {
        Self { size, seed: 42, anchor, relationships: None }
    }
}

/// What was written.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DemoSummary {
    /// Stakeholders created.
    pub stakeholders: u64,
    /// Stakeholders created, by kind (`CUSTOMER`, `EMPLOYEE`, …).
    pub by_kind: BTreeMap<String, u64>,
    /// Relationships created.
    pub relationships: u64,
    /// Interactions recorded.
    pub interactions: u64,
}

/// Where the generator is; reported after each batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoProgress {
    /// `stakeholders`, `relationships`, `interactions`, `exits` or `programmes`.
    pub phase: &'static str,
    /// Records of this phase written so far.
    pub done: u64,
    /// Records this phase will write.
    pub total: u64,
}

/// Why no demo graph was written.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The store already holds data, which the demo would mix with.
    #[error("the store already holds {stakeholders} stakeholders; the demo graph is written only into an empty store, so point it at a new database")]
    NotEmpty {
        /// How many stakeholders it holds.
        stakeholders: u64,
    },
    /// The store failed or refused a batch.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Too few stakeholders for every kind to be present.
    #[error(
        "a demo graph of {size} stakeholders is too small; ask for at least {minimum} so that every kind is present"
    )]
    TooSmall {
        /// The size asked for.
        size: usize,
        /// The smallest size accepted.
        minimum: usize,
    },
}

/// Writes a deterministic six-market demo graph of `options.size` stakeholders into an EMPTY store, calling
/// `progress` after every batch. Every batch is applied at `options.anchor`.
#[tracing::instrument(skip_all, fields(size = options.size, seed = options.seed))]
pub async fn generate(
    store: &dyn GraphStore,
    options: &DemoOptions,
    progress: &(dyn Fn(DemoProgress) + Sync),
) -> Result<DemoSummary, DemoError> {
    if options.size < MIN_SIZE {
        return Err(DemoError::TooSmall { size: options.size, minimum: MIN_SIZE });
    }
    let existing = store.counts().await?.stakeholders;
    if existing > 0 {
        return Err(DemoError::NotEmpty { stakeholders: existing });
    }
    let clock = Clock { anchor: options.anchor, start: options.anchor - Duration::days(HISTORY_DAYS) };
    let writer = Writer { store, clock, progress };
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let (records, facts) = plan_stakeholders(&mut rng, options.size, clock);
    let mut summary = DemoSummary::default();
    let ids = create_stakeholders(&writer, records, &mut summary).await?;
    let edges = plan_relationships(&mut rng, &facts, clock, options.relationships.unwrap_or(0));
    let relationships = create_relationships(&writer, &edges, &ids).await?;
    summary.relationships = relationships.len() as u64;
    summary.interactions = record_interactions(&writer, &mut rng, &facts, &edges, &relationships).await?;
    record_exits(&writer, &facts, &ids).await?;
    record_programs(&writer, &rng, &facts, &ids).await?;
    tracing::info!(?summary, "demo graph written");
    Ok(summary)
}

/// The anchor and the start of the interaction history.
#[derive(Debug, Clone, Copy)]
struct Clock {
    anchor: DateTime<Utc>,
    start: DateTime<Utc>,
}

/// Customer segments, which scale power, lifetime value and purchase amounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment {
    Enterprise,
    Smb,
    Consumer,
}

/// What the planner decided about one stakeholder beyond its record; the wiring reads it.
#[derive(Debug, Clone)]
struct Facts {
    kind: StakeholderKind,
    segment: Segment,
    status: Option<CustomerStatus>,
    exit: Option<CustomerExit>,
    /// For a customer won back: its earlier exit and the day it came back (its interactions do not stop).
    won_back: Option<(CustomerExit, NaiveDate)>,
    /// The day a customer became one (none for a prospect).
    since: Option<NaiveDate>,
    /// Index into [`ROLES`], for employees who are not candidates.
    role: Option<usize>,
    candidate: bool,
    referrals: u8,
    /// Bit mask over [`PRODUCT_LINES`]: what a customer buys.
    product_lines: u8,
}

impl Facts {
    fn of(kind: StakeholderKind) -> Self {
        Self {
            kind,
            segment: Segment::Smb,
            status: None,
            exit: None,
            won_back: None,
            since: None,
            role: None,
            candidate: false,
            referrals: 0,
            product_lines: 0,
        }
    }

    /// Interactions stop at the start of the exit day.
    fn exit_time(&self) -> Option<DateTime<Utc>> {
        self.exit.map(|exit| exit.date.and_time(NaiveTime::MIN).and_utc())
    }
}

/// One planned relationship between two stakeholders, by position in the plan.
#[derive(Debug, Clone)]
struct Edge {
    from: u32,
    to: u32,
    rel_type: RelationshipType,
    level: Level,
    bonds: BondSet,
    trust: Option<Probability>,
    commitment: Option<Probability>,
    basis: Option<Basis>,
    since: DateTime<Utc>,
    /// When interactions stop: the earlier exit of its ends, or the anchor.
    end: DateTime<Utc>,
}

/// Writes the phases through the store, one transaction per batch, and reports progress.
struct Writer<'a> {
    store: &'a dyn GraphStore,
    clock: Clock,
    progress: &'a (dyn Fn(DemoProgress) + Sync),
}

impl Writer<'_> {
    /// Applies `commands` `per_batch` at a time at the anchor; `keep` takes each outcome and says how many records
    /// it holds, or `None` when it is not the outcome its command should have had.
    async fn write(
        &self,
        phase: &'static str,
        total: usize,
        per_batch: usize,
        commands: impl Iterator<Item = Command>,
        mut keep: impl FnMut(Outcome) -> Option<u64>,
    ) -> Result<u64, DemoError> {
        let unexpected = || DemoError::Store(StoreError::Internal(format!("unexpected outcome in demo {phase}")));
        let (mut commands, mut done) = (commands.peekable(), 0);
        while commands.peek().is_some() {
            let batch: Vec<Command> = commands.by_ref().take(per_batch).collect();
            let expected = batch.len();
            let outcomes = self.store.apply(batch, self.clock.anchor).await?.outcomes;
            if outcomes.len() != expected {
                return Err(unexpected());
            }
            for outcome in outcomes {
                done += keep(outcome).ok_or_else(unexpected)?;
            }
            (self.progress)(DemoProgress { phase, done, total: total as u64 });
        }
        Ok(done)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Phase 1: stakeholders

/// The kinds in creation order: the six-market shares, shuffled so that ids do not cluster by kind.
fn kind_sequence(rng: &mut ChaCha8Rng, size: usize) -> Vec<StakeholderKind> {
    use StakeholderKind::*;
    let shares = [(Employee, 0.08), (Supplier, 0.10), (Distributor, 0.10), (Media, 0.07), (Government, 0.05)];
    let mut kinds = Vec::with_capacity(size);
    for (kind, share) in shares {
        kinds.extend(std::iter::repeat_n(kind, (size as f64 * share) as usize));
    }
    kinds.extend(std::iter::repeat_n(Customer, size - kinds.len()));
    kinds.shuffle(rng);
    kinds
}

fn plan_stakeholders(rng: &mut ChaCha8Rng, size: usize, clock: Clock) -> (Vec<NewStakeholder>, Vec<Facts>) {
    let mut ordinals = BTreeMap::<StakeholderKind, usize>::new();
    kind_sequence(rng, size)
        .into_iter()
        .map(|kind| {
            let n = ordinals.entry(kind).and_modify(|n| *n += 1).or_insert(1);
            let (mut record, facts) = match kind {
                StakeholderKind::Customer => plan_customer(rng, *n, clock),
                StakeholderKind::Employee => plan_employee(rng, *n),
                StakeholderKind::Supplier => plan_supplier(rng, *n),
                StakeholderKind::Distributor => plan_distributor(rng, *n),
                StakeholderKind::Media => plan_media(rng, *n),
                StakeholderKind::Government => plan_government(rng, *n),
            };
            // Candidates' files are sensitive; anyone else is rarely private.
            record.private = rng.gen_bool(if facts.candidate { 0.4 } else { 0.025 });
            (record, facts)
        })
        .unzip()
}

fn record(prefix: &str, n: usize, name: String, power: f64, interest: f64, details: KindDetails) -> NewStakeholder {
    let (key, name, power, interest) = (label(format!("{prefix}-{n:06}")), label(name), unit(power), unit(interest));
    NewStakeholder { key, name, power, interest, private: false, extra_markets: MarketSet::EMPTY, details }
}

fn plan_customer(rng: &mut ChaCha8Rng, n: usize, clock: Clock) -> (NewStakeholder, Facts) {
    use CustomerStatus::*;
    let segment = weighted(rng, &[(Segment::Enterprise, 10), (Segment::Smb, 35), (Segment::Consumer, 55)]);
    let status = weighted(rng, &[(Active, 70), (AtRisk, 10), (Prospect, 8), (Churned, 8), (WonBack, 4)]);
    let (segment_name, name, power, value) = match segment {
        Segment::Enterprise => ("ENTERPRISE", company_name(rng), rng.gen_range(0.5..0.95), 250_000.0),
        Segment::Smb => ("SMB", company_name(rng), rng.gen_range(0.15..0.6), 20_000.0),
        Segment::Consumer => ("CONSUMER", person_name(rng), rng.gen_range(0.02..0.35), 1_200.0),
    };
    let mut facts = Facts { segment, status: Some(status), ..Facts::of(StakeholderKind::Customer) };
    facts.product_lines =
        (0..rng.gen_range(1..=3)).fold(0, |mask, _| mask | 1 << skewed(rng, PRODUCT_LINES.len(), 1.5));
    if status == Churned {
        use ExitReason::*;
        // Price and service drive most exits.
        let reasons = [(Price, 35), (Service, 25), (Product, 15), (Market, 10), (Technology, 10), (Political, 5)];
        let reason = weighted(rng, &reasons);
        let date = (clock.anchor - Duration::days(rng.gen_range(14..=HISTORY_DAYS - 30))).date_naive();
        facts.exit = Some(CustomerExit { reason, date });
    }
    if status != Prospect && rng.gen_bool(0.04) {
        facts.referrals = rng.gen_range(1..=3);
    }
    let (since, won_back) = lifecycle(rng, n, clock, status, facts.exit);
    facts.won_back = won_back;
    facts.since = since;
    let details = KindDetails::Customer(CustomerDetails {
        // Churned customers are written as at risk, and those won back as active; their exit (and win-back)
        // commands give them their status.
        status: match status {
            Churned => AtRisk,
            WonBack => Active,
            other => other,
        },
        segment: Some(label(segment_name)),
        lifetime_value: (status != Prospect).then(|| money(value * lognormal(rng, 0.8))),
        exit: None,
        perceived_value: (status != Prospect).then(|| perceived_value(rng, n, value, status)),
        since,
        lifecycle: Vec::new(),
        memberships: Vec::new(),
        retention_cost: None,
    });
    let mut record = record("CUS", n, name, power, rng.gen_range(0.1..0.95), details);
    if facts.referrals > 0 {
        record.extra_markets = MarketSet::of([Market::Referral]);
    }
    (record, facts)
}

/// When a customer became one (none for a prospect) and, for one won back, its exit and the day it came back:
/// customers joined over the eight years before the anchor, more of them recently; those won back left in the
/// two years of history, stayed away one to ten months and came back before the anchor. Drawn from a stream of
/// their own, as [`perceived_value`] is.
fn lifecycle(
    main: &ChaCha8Rng,
    n: usize,
    clock: Clock,
    status: CustomerStatus,
    exit: Option<CustomerExit>,
) -> (Option<NaiveDate>, Option<(CustomerExit, NaiveDate)>) {
    if status == CustomerStatus::Prospect {
        return (None, None);
    }
    let mut rng = ChaCha8Rng::from_seed(main.get_seed());
    rng.set_stream(0x5EED_0000_0000_0000 + n as u64);
    let anchor = clock.anchor.date_naive();
    let won_back = (status == CustomerStatus::WonBack).then(|| {
        use ExitReason::*;
        // Won back: those who left over price or service more often than those whose market changed.
        let reasons = [(Price, 45), (Service, 30), (Product, 15), (Technology, 5), (Market, 3), (Political, 2)];
        let reason = weighted(&mut rng, &reasons);
        let date = anchor - Duration::days(rng.gen_range(60..=HISTORY_DAYS - 30));
        let back = date + Duration::days(rng.gen_range(30..=300).min((anchor - date).num_days() - 7));
        (CustomerExit { reason, date }, back)
    });
    let left = exit.or(won_back.map(|(exit, _)| exit)).map(|exit| exit.date);
    // Skewed towards recent years: a firm's customer base grows.
    let days = (rng.gen::<f64>().powf(1.6) * 8.0 * 365.0) as i64 + 30;
    let since = anchor - Duration::days(days);
    let since = left.map_or(since, |left| since.min(left - Duration::days(60)));
    (Some(since), won_back)
}

/// A customer's perceived-value inputs around its segment's yearly spend `value`: those at risk or leaving get less
/// core value for their money (CPV mostly below 1), the others a little more (mostly above 1). Drawn from a stream
/// of their own (the main one's seed, stream `n`), so the rest of the demo is what it was before CPV was added.
fn perceived_value(main: &ChaCha8Rng, n: usize, value: f64, status: CustomerStatus) -> PerceivedValue {
    let mut rng = ChaCha8Rng::from_seed(main.get_seed());
    rng.set_stream(0x00C0_FFEE_0000_0000 + n as u64);
    let price = value * lognormal(&mut rng, 0.3);
    let core = match status {
        CustomerStatus::AtRisk | CustomerStatus::Churned => 0.8,
        _ => 1.1,
    };
    let core_value = price * core * lognormal(&mut rng, 0.15);
    let services_value = price * rng.gen_range(0.05..0.35);
    let relationship_costs = price * rng.gen_range(0.05..0.3);
    PerceivedValue::new(money(core_value), money(services_value), money(price), money(relationship_costs))
        .expect("a positive price")
}

fn plan_employee(rng: &mut ChaCha8Rng, n: usize) -> (NewStakeholder, Facts) {
    // The first employees take the key roles in turn, so that even a small graph has one of each.
    let common: Vec<(usize, u32)> = ROLES.iter().enumerate().map(|(index, role)| (index, role.2)).collect();
    let role = if n <= KEY_ROLES { n - 1 } else { weighted(rng, &common) };
    let candidate = n > KEY_ROLES && rng.gen_bool(0.05);
    let (title, department, _) = ROLES[role];
    let power = match (candidate, role) {
        (true, _) => rng.gen_range(0.02..0.15),
        (false, ACCOUNT_MANAGER) => rng.gen_range(0.3..0.65),
        (false, _) => rng.gen_range(0.05..0.5),
    };
    let interest = if candidate { rng.gen_range(0.4..0.9) } else { rng.gen_range(0.55..1.0) };
    let details = KindDetails::Employee { role: Some(label(title)), department: Some(label(department)), candidate };
    let facts = Facts { role: (!candidate).then_some(role), candidate, ..Facts::of(StakeholderKind::Employee) };
    (record("EMP", n, person_name(rng), power, interest, details), facts)
}

fn plan_supplier(rng: &mut ChaCha8Rng, n: usize) -> (NewStakeholder, Facts) {
    let (category, word) = *pick(rng, words::SUPPLY);
    let name = format!("{} {word}{}", pick(rng, words::PREFIX), pick(rng, words::LEGAL));
    let details = KindDetails::Supplier { category: Some(label(category)) };
    let power = 0.15 + 0.75 * rng.gen::<f64>().powf(1.5);
    (record("SUP", n, name, power, rng.gen_range(0.35..0.9), details), Facts::of(StakeholderKind::Supplier))
}

fn plan_distributor(rng: &mut ChaCha8Rng, n: usize) -> (NewStakeholder, Facts) {
    let name = format!("{} {}{}", pick(rng, words::PREFIX), pick(rng, words::DISTRIBUTION), pick(rng, words::LEGAL));
    let (channel, region) = (Some(label(pick(rng, words::CHANNELS))), Some(label(pick(rng, words::REGIONS))));
    let (power, interest) = (rng.gen_range(0.25..0.8), rng.gen_range(0.3..0.95));
    let details = KindDetails::Distributor { channel, region };
    (record("DIS", n, name, power, interest, details), Facts::of(StakeholderKind::Distributor))
}

fn plan_media(rng: &mut ChaCha8Rng, n: usize) -> (NewStakeholder, Facts) {
    let outlet = if rng.gen_bool(0.3) {
        pick(rng, words::TRADE_PRESS).to_string()
    } else {
        format!("The {} {}", pick(rng, words::PAPER_ADJ), pick(rng, words::PAPER_NOUN))
    };
    // Most media stakeholders are journalists at an outlet; the rest are the outlets themselves.
    let journalist = rng.gen_bool(0.6);
    let reach = (if journalist { 15_000.0 } else { 80_000.0 } * lognormal(rng, 1.2)).round().max(100.0);
    let name = if journalist { format!("{} ({outlet})", person_name(rng)) } else { outlet.clone() };
    // Reach buys power: a 1,000-reader blog sits near 0.5, a million-reader daily near 0.9.
    let power = 0.15 + 0.12 * reach.log10();
    let details = KindDetails::Media { outlet: Some(label(outlet)), reach: Some(reach as u64) };
    (record("MED", n, name, power, rng.gen_range(0.1..0.7), details), Facts::of(StakeholderKind::Media))
}

fn plan_government(rng: &mut ChaCha8Rng, n: usize) -> (NewStakeholder, Facts) {
    // Enumerated rather than drawn, so that names stay unique; large graphs add district offices.
    let (agencies, places, index) = (words::AGENCIES.len(), words::JURISDICTIONS.len(), n - 1);
    let (agency, jurisdiction) = (words::AGENCIES[index % agencies], words::JURISDICTIONS[(index / agencies) % places]);
    let name = match index / (agencies * places) {
        0 => format!("{agency} of {jurisdiction}"),
        district => format!("{agency} of {jurisdiction} (District {district})"),
    };
    let details = KindDetails::Government { agency: Some(label(agency)), jurisdiction: Some(label(jurisdiction)) };
    let (power, interest) = (rng.gen_range(0.7..1.0), rng.gen_range(0.15..0.85));
    (record("GOV", n, name, power, interest, details), Facts::of(StakeholderKind::Government))
}

fn company_name(rng: &mut ChaCha8Rng) -> String {
    let founder = if rng.gen_bool(0.3) { pick(rng, words::LAST) } else { pick(rng, words::PREFIX) };
    format!("{founder} {}{}", pick(rng, words::TRADE), pick(rng, words::LEGAL))
}

fn person_name(rng: &mut ChaCha8Rng) -> String {
    format!("{} {}", pick(rng, words::FIRST), pick(rng, words::LAST))
}

async fn create_stakeholders(
    writer: &Writer<'_>,
    records: Vec<NewStakeholder>,
    summary: &mut DemoSummary,
) -> Result<Vec<StakeholderId>, DemoError> {
    let (total, mut ids) = (records.len(), Vec::with_capacity(records.len()));
    let commands = records.into_iter().map(Command::CreateStakeholder);
    let by_kind = &mut summary.by_kind;
    summary.stakeholders = writer
        .write("stakeholders", total, STAKEHOLDER_BATCH, commands, |outcome| {
            let Outcome::Stakeholder(stakeholder) = outcome else { return None };
            *by_kind.entry(stakeholder.kind().as_str().to_owned()).or_default() += 1;
            ids.push(stakeholder.id);
            Some(1)
        })
        .await?;
    Ok(ids)
}

// ---------------------------------------------------------------------------------------------------------------
// Phase 2: relationships

/// Stakeholders by the part they play in the wiring, in creation order (early members become the hubs).
struct Pools {
    customers: Vec<u32>,
    /// Enterprise customers and suppliers: what the press writes about.
    prominent: Vec<u32>,
    staff: Vec<u32>,
    candidates: Vec<u32>,
    /// Staff in each of the key roles.
    by_role: Vec<Vec<u32>>,
    departments: BTreeMap<&'static str, Vec<u32>>,
    suppliers: Vec<u32>,
    distributors: Vec<u32>,
    media: Vec<u32>,
    government: Vec<u32>,
}

impl Pools {
    fn of(facts: &[Facts]) -> Self {
        use StakeholderKind::*;
        let select = |keep: &dyn Fn(&Facts) -> bool| -> Vec<u32> {
            facts.iter().enumerate().filter(|(_, facts)| keep(facts)).map(|(index, _)| index as u32).collect()
        };
        let of_kind = |kind: StakeholderKind| select(&|facts| facts.kind == kind);
        let mut departments = BTreeMap::<_, Vec<u32>>::new();
        for (index, role) in facts.iter().enumerate().filter_map(|(index, facts)| Some((index, facts.role?))) {
            departments.entry(ROLES[role].1).or_default().push(index as u32);
        }
        Pools {
            customers: of_kind(Customer),
            prominent: select(&|facts| {
                facts.kind == Supplier || (facts.kind == Customer && facts.segment == Segment::Enterprise)
            }),
            staff: select(&|facts| facts.role.is_some()),
            candidates: select(&|facts| facts.candidate),
            by_role: (0..KEY_ROLES).map(|role| select(&|facts| facts.role == Some(role))).collect(),
            departments,
            suppliers: of_kind(Supplier),
            distributors: of_kind(Distributor),
            media: of_kind(Media),
            government: of_kind(Government),
        }
    }
}

/// Collects edges without duplicates and gives each its level, bonds, trust, commitment, basis and dates.
struct Planner<'a> {
    rng: &'a mut ChaCha8Rng,
    facts: &'a [Facts],
    clock: Clock,
    edges: Vec<Edge>,
    /// Only asked for membership, never iterated, so it cannot disturb determinism.
    seen: HashSet<(u32, u32, RelationshipType)>,
}

impl Planner<'_> {
    fn link(&mut self, from: u32, to: u32, rel_type: RelationshipType) {
        let symmetric = matches!(rel_type, RelationshipType::Knows | RelationshipType::PartnersWith);
        let key = if symmetric && to < from { (to, from, rel_type) } else { (from, to, rel_type) };
        if from != to && self.seen.insert(key) {
            let edge = self.shape(from, to, rel_type);
            self.edges.push(edge);
        }
    }

    /// Links `from` to up to `count` members of `pool`, favouring early members so that hubs emerge.
    fn link_some(&mut self, from: u32, pool: &[u32], count: usize, rel_type: RelationshipType, skew: f64) {
        for _ in 0..count {
            if let Some(to) = self.pick_from(pool, skew) {
                self.link(from, to, rel_type);
            }
        }
    }

    fn pick_from(&mut self, pool: &[u32], skew: f64) -> Option<u32> {
        (!pool.is_empty()).then(|| pool[skewed(self.rng, pool.len(), skew)])
    }

    /// One, sometimes two, rarely three.
    fn few(&mut self) -> usize {
        1 + usize::from(self.rng.gen_bool(0.45)) + usize::from(self.rng.gen_bool(0.2))
    }

    fn shape(&mut self, from: u32, to: u32, rel_type: RelationshipType) -> Edge {
        let (facts, rng) = (self.facts, &mut *self.rng);
        let (source, target) = (&facts[from as usize], &facts[to as usize]);
        let profile = profile(rel_type);
        let levels = match (rel_type, target.segment) {
            // Key accounts get partnership-level management; consumers get a reactive service desk.
            (RelationshipType::Manages, Segment::Enterprise) => [0, 0, 1, 4, 4],
            (RelationshipType::Manages, Segment::Consumer) => [1, 3, 4, 1, 0],
            _ => profile.levels,
        };
        let level = weighted(rng, &Level::ALL.iter().copied().zip(levels).collect::<Vec<_>>());
        let rank = f64::from(level.rank());
        let bonds = [Bond::Financial, Bond::Social, Bond::Structural]
            .into_iter()
            .zip(profile.bonds)
            .filter(|(_, odds)| rng.gen_bool((odds * (0.55 + 0.15 * rank)).min(1.0)))
            .fold(BondSet::EMPTY, |set, (bond, _)| set.with(bond));
        let trust = (!rng.gen_bool(profile.unknown)).then(|| unit(0.2 + 0.13 * rank + 0.12 * normal(rng)));
        let commitment = (!rng.gen_bool(profile.unknown + 0.05)).then(|| unit(0.15 + 0.14 * rank + 0.12 * normal(rng)));
        let basis = rng.gen_bool(0.85).then(|| profile.bases[skewed(rng, profile.bases.len(), 1.5)]);
        let end = [source.exit_time(), target.exit_time()].into_iter().flatten().min().unwrap_or(self.clock.anchor);
        // Prospects and candidates are recent acquaintances; other ties reach back up to ten years.
        let recent = [source, target].iter().any(|end| end.candidate || end.status == Some(CustomerStatus::Prospect));
        let max_days = if recent { 365.0 } else { 3650.0 };
        let days = 30.0 + rng.gen::<f64>().powf(1.5) * (max_days - 30.0);
        let since = end - Duration::minutes((days * 1440.0) as i64);
        Edge { from, to, rel_type, level, bonds, trust, commitment, basis, since, end }
    }
}

fn plan_relationships(rng: &mut ChaCha8Rng, facts: &[Facts], clock: Clock, at_least: usize) -> Vec<Edge> {
    let pools = Pools::of(facts);
    let mut planner = Planner { rng, facts, clock, edges: Vec::new(), seen: HashSet::new() };
    wire_customers(&mut planner, &pools);
    wire_partners(&mut planner, &pools);
    wire_influencers(&mut planner, &pools);
    wire_colleagues(&mut planner, &pools);
    wire_acquaintances(&mut planner, at_least);
    planner.edges
}

/// Acquaintances between any two stakeholders, favouring well-connected ones (early indices), until there are
/// `at_least` relationships (or the attempts run out on a small graph).
fn wire_acquaintances(planner: &mut Planner<'_>, at_least: usize) {
    let everyone = planner.facts.len();
    let mut attempts = at_least.saturating_sub(planner.edges.len()) * 3;
    while planner.edges.len() < at_least && attempts > 0 {
        attempts -= 1;
        let from = planner.rng.gen_range(0..everyone) as u32;
        let to = skewed(planner.rng, everyone, 1.6) as u32;
        let customers = [from, to].iter().all(|end| planner.facts[*end as usize].kind == StakeholderKind::Customer);
        let rel_type =
            if customers && planner.rng.gen_bool(0.3) { RelationshipType::Refers } else { RelationshipType::Knows };
        planner.link(from, to, rel_type);
    }
}

/// Relationship managers, purchases through distributors, and referrals between customers.
fn wire_customers(planner: &mut Planner<'_>, pools: &Pools) {
    use RelationshipType::*;
    let facts = planner.facts;
    for &customer in &pools.customers {
        let customer_facts = &facts[customer as usize];
        let prospect = customer_facts.status == Some(CustomerStatus::Prospect);
        // About 40% of customers have a relationship manager: nearly every key account, sales' open pipeline.
        let managed = match customer_facts.segment {
            _ if prospect => 0.6,
            Segment::Enterprise => 0.9,
            Segment::Smb => 0.55,
            Segment::Consumer => 0.2,
        };
        if planner.rng.gen_bool(managed) {
            if let Some(manager) = planner.pick_from(&pools.by_role[ACCOUNT_MANAGER], 1.5) {
                planner.link(manager, customer, Manages);
            }
        }
        if !prospect && planner.rng.gen_bool(0.85) {
            let count = planner.few();
            planner.link_some(customer, &pools.distributors, count, BuysFrom, 2.0);
        }
        planner.link_some(customer, &pools.customers, usize::from(customer_facts.referrals), Refers, 1.0);
    }
}

/// Suppliers and distributors with the employees who work with them, and the alliances between them.
fn wire_partners(planner: &mut Planner<'_>, pools: &Pools) {
    use RelationshipType::*;
    for &supplier in &pools.suppliers {
        let count = planner.few() + 1;
        planner.link_some(supplier, &pools.by_role[PROCUREMENT_LEAD], count, Supplies, 1.3);
        if planner.rng.gen_bool(0.08) {
            let count = planner.few();
            planner.link_some(supplier, &pools.distributors, count, PartnersWith, 2.0);
        }
    }
    for &distributor in &pools.distributors {
        let count = planner.few() + 1;
        planner.link_some(distributor, &pools.by_role[CHANNEL_MANAGER], count, DistributesFor, 1.3);
    }
}

/// Media coverage and contacts, regulation, and the few influence ties between media, government and customers.
fn wire_influencers(planner: &mut Planner<'_>, pools: &Pools) {
    use RelationshipType::*;
    for &outlet in &pools.media {
        let count = planner.few();
        planner.link_some(outlet, &pools.by_role[PRESS_OFFICER], count, Covers, 1.2);
        let count = planner.rng.gen_range(0..=6);
        planner.link_some(outlet, &pools.prominent, count, Covers, 2.5);
        for _ in 0..planner.few() {
            let pool = if planner.rng.gen_bool(0.6) { &pools.by_role[PRESS_OFFICER] } else { &pools.staff };
            if let Some(contact) = planner.pick_from(pool, 1.2) {
                let (from, to) = if planner.rng.gen_bool(0.5) { (outlet, contact) } else { (contact, outlet) };
                planner.link(from, to, Knows);
            }
        }
        if planner.rng.gen_bool(0.15) {
            let count = planner.few();
            planner.link_some(outlet, &pools.government, count, Influences, 1.5);
        }
    }
    for &regulated in pools.suppliers.iter().chain(&pools.distributors).chain(&pools.customers) {
        let odds = match planner.facts[regulated as usize] {
            Facts { kind: StakeholderKind::Customer, segment: Segment::Enterprise, .. } => 0.3,
            Facts { kind: StakeholderKind::Customer, segment: Segment::Smb, .. } => 0.05,
            Facts { kind: StakeholderKind::Customer, .. } => 0.0,
            _ => 0.8,
        };
        if planner.rng.gen_bool(odds) {
            // Large regulators oversee many; a few bodies share a stakeholder.
            for _ in 0..1 + usize::from(planner.rng.gen_bool(0.3)) {
                if let Some(agency) = planner.pick_from(&pools.government, 1.5) {
                    planner.link(agency, regulated, Regulates);
                }
            }
        }
    }
    for &agency in &pools.government {
        let count = planner.few();
        planner.link_some(agency, &pools.by_role[COMPLIANCE_OFFICER], count, Regulates, 1.2);
        if planner.rng.gen_bool(0.2) {
            let count = planner.few();
            planner.link_some(agency, &pools.customers, count, Influences, 2.0);
        }
    }
}

/// Colleagues who know each other: a ring within each department with random shortcuts (a small world), and
/// candidates referred by employees.
fn wire_colleagues(planner: &mut Planner<'_>, pools: &Pools) {
    use RelationshipType::*;
    for members in pools.departments.values() {
        for (position, &member) in members.iter().enumerate() {
            for step in (1..=2).filter(|step| members.len() > *step) {
                planner.link(member, members[(position + step) % members.len()], Knows);
            }
            if planner.rng.gen_bool(0.6) {
                planner.link_some(member, &pools.staff, 1, Knows, 1.5);
            }
        }
    }
    for &candidate in &pools.candidates {
        let rel_type = if planner.rng.gen_bool(0.6) { Refers } else { Knows };
        if let Some(referrer) = planner.pick_from(&pools.staff, 1.0) {
            planner.link(referrer, candidate, rel_type);
        }
    }
}

async fn create_relationships(
    writer: &Writer<'_>,
    edges: &[Edge],
    ids: &[StakeholderId],
) -> Result<Vec<RelationshipId>, DemoError> {
    let mut relationships = Vec::with_capacity(edges.len());
    // Boxed as a Send iterator: left as a closure's type, it keeps rustc from proving `generate`'s future Send
    // (`serve --demo` seeds on a spawned task).
    let commands: Box<dyn Iterator<Item = Command> + Send> = Box::new(edges.iter().map(|edge| {
        Command::UpsertRelationship(RelationshipUpsert {
            from: ids[edge.from as usize],
            to: ids[edge.to as usize],
            rel_type: edge.rel_type,
            level: Some(edge.level),
            bonds: Some(edge.bonds),
            trust: edge.trust,
            commitment: edge.commitment,
            since: Some(edge.since),
            basis: edge.basis,
        })
    }));
    writer
        .write("relationships", edges.len(), RELATIONSHIP_BATCH, commands, |outcome| {
            let Outcome::Relationship { relationship, .. } = outcome else { return None };
            relationships.push(relationship.id);
            Some(1)
        })
        .await?;
    Ok(relationships)
}

/// How each type of relationship tends to look and to be used.
struct Profile {
    /// Weights of Kotler's levels, BASIC to PARTNERSHIP.
    levels: [u32; 5],
    /// Odds of a FINANCIAL, SOCIAL and STRUCTURAL bond at a middle level.
    bonds: [f64; 3],
    /// Usual bases, most usual first.
    bases: &'static [Basis],
    /// Odds that trust is unknown (commitment slightly more often).
    unknown: f64,
    /// Interactions over two years at a middle level.
    interactions: f64,
    /// Mean sentiment at a middle level.
    mood: f64,
    /// Channel weights.
    channels: &'static [(Channel, u32)],
}

#[rustfmt::skip]
fn profile(rel_type: RelationshipType) -> Profile {
    use Basis::*;
    use Channel::*;
    use RelationshipType::*;
    const TRADE: &[(Channel, u32)] = &[(Meeting, 25), (Call, 25), (Email, 35), (Event, 5), (Message, 10)];
    const SOCIAL: &[(Channel, u32)] = &[(Message, 30), (Call, 20), (Meeting, 20), (Event, 15), (Social, 15)];
    const PERSONAL: &[Basis] = &[Professional, Cultural, Geographic, Incidental, Kinship];
    let p = |levels, bonds, bases, unknown, interactions, mood, channels| Profile {
        levels, bonds, bases, unknown, interactions, mood, channels,
    };
    match rel_type {
        BuysFrom => p([3, 4, 3, 1, 0], [0.8, 0.15, 0.2], &[Professional, Geographic], 0.15, 6.0, 0.3,
            &[(Purchase, 50), (Support, 15), (Email, 15), (Call, 12), (Meeting, 8)]),
        Manages => p([1, 2, 4, 3, 1], [0.5, 0.7, 0.3], &[Professional], 0.1, 7.0, 0.35,
            &[(Meeting, 25), (Call, 25), (Email, 25), (Purchase, 15), (Support, 10)]),
        Supplies | DistributesFor | Employs => p([0, 1, 3, 4, 2], [0.9, 0.3, 0.55], &[Professional, Geographic], 0.15, 6.0, 0.3, TRADE),
        PartnersWith => p([0, 0, 2, 4, 4], [0.7, 0.4, 0.8], &[Professional], 0.1, 5.0, 0.4, TRADE),
        Refers => p([2, 3, 3, 1, 0], [0.1, 0.8, 0.0], &[Kinship, Geographic, Cultural, Incidental, Professional], 0.3, 2.0, 0.5, SOCIAL),
        Knows => p([1, 3, 4, 2, 1], [0.0, 0.9, 0.1], PERSONAL, 0.2, 4.0, 0.45, SOCIAL),
        Covers => p([4, 4, 2, 1, 0], [0.0, 0.3, 0.0], &[Professional, Incidental], 0.35, 4.0, 0.05,
            &[(Press, 50), (Email, 30), (Call, 20)]),
        Regulates => p([3, 4, 3, 1, 0], [0.0, 0.0, 0.8], &[Geographic, Professional], 0.35, 3.0, -0.05,
            &[(Filing, 50), (Meeting, 20), (Email, 30)]),
        Influences => p([3, 3, 2, 1, 0], [0.0, 0.4, 0.1], &[Professional, Cultural], 0.4, 2.0, 0.0,
            &[(Press, 30), (Social, 30), (Event, 20), (Meeting, 20)]),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Phase 3: interactions

async fn record_interactions(
    writer: &Writer<'_>,
    rng: &mut ChaCha8Rng,
    facts: &[Facts],
    edges: &[Edge],
    relationships: &[RelationshipId],
) -> Result<u64, DemoError> {
    let clock = writer.clock;
    // Counts first, so that progress knows the total before anything is written.
    let counts: Vec<usize> = edges.iter().map(|edge| interaction_count(rng, edge, clock)).collect();
    let mut next = 0;
    // Whole relationships are gathered until a command holds about INTERACTION_BATCH interactions.
    let commands = std::iter::from_fn(|| {
        let mut batch = Vec::with_capacity(INTERACTION_BATCH + MAX_INTERACTIONS);
        while batch.len() < INTERACTION_BATCH && next < edges.len() {
            write_interactions(rng, facts, &edges[next], relationships[next], counts[next], clock, &mut batch);
            next += 1;
        }
        (!batch.is_empty()).then_some(Command::RecordInteractions(batch))
    });
    writer
        .write("interactions", counts.iter().sum(), 1, commands, |outcome| match outcome {
            Outcome::Interactions { recorded, .. } => Some(recorded as u64),
            _ => None,
        })
        .await
}

/// Busier for closer relationships and for those that were alive for more of the two years.
fn interaction_count(rng: &mut ChaCha8Rng, edge: &Edge, clock: Clock) -> usize {
    let alive = (edge.end - edge.since.max(clock.start)).num_minutes() as f64 / (HISTORY_DAYS * 1440) as f64;
    let closeness = 0.4 + 0.3 * f64::from(edge.level.rank());
    let expected = profile(edge.rel_type).interactions * closeness * alive * lognormal(rng, 0.6);
    (expected.round() as usize).min(MAX_INTERACTIONS)
}

fn write_interactions(
    rng: &mut ChaCha8Rng,
    facts: &[Facts],
    edge: &Edge,
    relationship: RelationshipId,
    count: usize,
    clock: Clock,
    out: &mut Vec<NewInteraction>,
) {
    let ends = [&facts[edge.from as usize], &facts[edge.to as usize]];
    let profile = profile(edge.rel_type);
    // Only a paying customer on a sales relationship makes purchases.
    let sales = matches!(edge.rel_type, RelationshipType::BuysFrom | RelationshipType::Manages);
    let buyer =
        ends.into_iter().find(|end| sales && end.status.is_some_and(|status| status != CustomerStatus::Prospect));
    let status_mood = match ends.iter().find_map(|end| end.status) {
        Some(CustomerStatus::AtRisk) => -0.35,
        Some(CustomerStatus::Churned | CustomerStatus::WonBack) => -0.1,
        _ => 0.0,
    };
    let trust_mood = edge.trust.map_or(0.0, |trust| (trust.get() - 0.5) * 0.4);
    let rank = f64::from(edge.level.rank());
    let mood = profile.mood + 0.06 * (rank - 3.0) + status_mood + trust_mood + 0.15 * normal(rng);
    // Some relationships are one-way (only we reach out, or only they do); most are a mix.
    let inbound = match rng.gen_range(0..100) {
        0..=11 => 0.0,
        12..=19 => 1.0,
        _ => rng.gen_range(0.25..0.75),
    };
    let from = edge.since.max(clock.start);
    let span = (edge.end - from).num_seconds().max(1);
    let mut offsets: Vec<i64> = (0..count).map(|_| rng.gen_range(0..span)).collect();
    offsets.sort_unstable();
    for at in offsets.into_iter().map(|offset| from + Duration::seconds(offset)) {
        let channel = match weighted(rng, profile.channels) {
            Channel::Purchase if buyer.is_none() => Channel::Meeting,
            channel => channel,
        };
        // Before an exit the tone sours over the last six months.
        let days_left = (edge.end - at).num_days() as f64;
        let drift = if edge.end < clock.anchor { -0.9 * (1.0 - days_left / 180.0).max(0.0) } else { 0.0 };
        let sentiment = (mood + drift + 0.25 * normal(rng)).clamp(-1.0, 1.0);
        let inbound = channel == Channel::Purchase || rng.gen_bool(inbound);
        let purchase = buyer.filter(|_| channel == Channel::Purchase).map(|buyer| purchase(rng, buyer));
        out.push(NewInteraction {
            relationship,
            at,
            channel,
            direction: if inbound { Direction::Inbound } else { Direction::Outbound },
            sentiment: Sentiment::parse(round2(sentiment)).expect("clamped to [-1, 1]"),
            amount: purchase.as_ref().map(|(amount, _)| *amount),
            product_line: purchase.map(|(_, line)| line),
            note: rng.gen_bool(0.12).then(|| pick(rng, words::notes(channel)).to_string()),
            topic: topic(channel, inbound, sentiment, buyer.is_some()),
            key: None,
        });
    }
}

/// What an interaction was about, from what the demo already drew for it (no draw of its own, so the rest of the
/// demo is what it was before topics were kept): with a customer, purchases are orders (returns when they went
/// badly), support is service (complaints when it went badly), a sour inbound contact is a complaint, other inbound
/// contacts are inquiries and outbound mail and messages promotions; anything else has none.
fn topic(channel: Channel, inbound: bool, sentiment: f64, customer: bool) -> Option<Topic> {
    if !customer {
        return None;
    }
    Some(match channel {
        Channel::Purchase if sentiment < -0.4 => Topic::Return,
        Channel::Purchase => Topic::Order,
        Channel::Support if sentiment < -0.3 => Topic::Complaint,
        Channel::Support => Topic::Service,
        _ if inbound && sentiment < -0.5 => Topic::Complaint,
        Channel::Call | Channel::Message | Channel::Email if inbound => Topic::Inquiry,
        Channel::Message | Channel::Email => Topic::Promotion,
        _ => return None,
    })
}

/// An amount scaled to the buyer's segment, and one of the product lines it buys.
fn purchase(rng: &mut ChaCha8Rng, buyer: &Facts) -> (Amount, Label) {
    let median = match buyer.segment {
        Segment::Enterprise => 12_000.0,
        Segment::Smb => 1_200.0,
        Segment::Consumer => 90.0,
    };
    let lines: Vec<&str> = (0..PRODUCT_LINES.len())
        .filter(|bit| buyer.product_lines & (1 << bit) != 0)
        .map(|bit| PRODUCT_LINES[bit])
        .collect();
    (money(median * lognormal(rng, 0.7)), label(pick(rng, &lines)))
}

// ---------------------------------------------------------------------------------------------------------------
// Phase 4: exits

/// Records the exits, then the win-backs of those who came back.
async fn record_exits(writer: &Writer<'_>, facts: &[Facts], ids: &[StakeholderId]) -> Result<u64, DemoError> {
    let total =
        facts.iter().map(|facts| usize::from(facts.exit.is_some()) + 2 * usize::from(facts.won_back.is_some())).sum();
    let planned = || facts.iter().zip(ids);
    let exits = planned().filter_map(|(facts, id)| {
        facts.exit.or(facts.won_back.map(|(exit, _)| exit)).map(|exit| Command::RecordCustomerExit { id: *id, exit })
    });
    let win_backs = planned()
        .filter_map(|(facts, id)| facts.won_back.map(|(_, date)| Command::RecordCustomerWinBack { id: *id, date }));
    // Boxed as a Send iterator, as in `create_relationships`.
    let exits: Box<dyn Iterator<Item = Command> + Send> = Box::new(exits.chain(win_backs));
    writer
        .write("exits", total, EXIT_BATCH, exits, |outcome| matches!(outcome, Outcome::Stakeholder(_)).then_some(1))
        .await
}

// ---------------------------------------------------------------------------------------------------------------
// Phase 5: programmes

/// One of the demo's programmes, with the share of customers who join it (of those who stay, and of those who
/// leave).
struct DemoProgram {
    key: &'static str,
    name: &'static str,
    kind: ProgramKind,
    markets: &'static [Market],
    stays: f64,
    leaves: f64,
}

/// The demo's programmes: a frequency programme and a club for every customer, a customisation programme for the
/// enterprise segment.
const PROGRAMS: [DemoProgram; 3] = [
    DemoProgram {
        key: "PRG-POINTS",
        name: "Loyalty Points",
        kind: ProgramKind::Frequency,
        markets: &[Market::Customer],
        stays: 0.40,
        leaves: 0.10,
    },
    DemoProgram {
        key: "PRG-CLUB",
        name: "Customer Club",
        kind: ProgramKind::Club,
        markets: &[Market::Customer, Market::Referral],
        stays: 0.30,
        leaves: 0.04,
    },
    DemoProgram {
        key: "PRG-TAILOR",
        name: "Tailored Service",
        kind: ProgramKind::Customisation,
        markets: &[Market::Customer],
        stays: 0.45,
        leaves: 0.10,
    },
];

/// Creates the programmes, then enrols customers over the history and has some leave: members are drawn more
/// often from customers who stay, so members churn less than comparable non-members (as the literature expects
/// of a programme worth its cost). A customer joins on a day between the later of its customer-since day and the
/// start of the history and the anchor (one who would join after its exit does not); a leaver leaves most programmes on the day it exits, and
/// one in five members who stay leave a programme before the anchor. Drawn from a stream of its own per customer
/// (the main one's seed, as the lifecycle's), so the rest of the demo is what it was before programmes.
async fn record_programs(
    writer: &Writer<'_>,
    main: &ChaCha8Rng,
    facts: &[Facts],
    ids: &[StakeholderId],
) -> Result<u64, DemoError> {
    let create: Vec<Command> = PROGRAMS
        .iter()
        .map(|program| {
            Command::CreateProgram(NewProgram {
                key: label(program.key),
                name: label(program.name),
                kind: program.kind,
                markets: MarketSet::of(program.markets.iter().copied()),
            })
        })
        .collect();
    let mut programs: Vec<ProgramId> = Vec::new();
    writer
        .write("programmes", PROGRAMS.len(), PROGRAMS.len(), create.into_iter(), |outcome| match outcome {
            Outcome::Program(program) => {
                programs.push(program.id);
                Some(0)
            }
            _ => None,
        })
        .await?;
    let anchor = writer.clock.anchor.date_naive();
    let history_start = writer.clock.start.date_naive();
    let (mut enrolments, mut leaves) = (Vec::new(), Vec::new());
    for (n, (facts, id)) in facts.iter().zip(ids).enumerate() {
        let Some(since) = facts.since else { continue };
        let mut rng = ChaCha8Rng::from_seed(main.get_seed());
        rng.set_stream(0x0C1B_0000_0000_0000 + n as u64);
        let exit = facts.exit.or(facts.won_back.map(|(exit, _)| exit)).map(|exit| exit.date);
        let first_day = since.max(history_start);
        for (program, planned) in programs.iter().zip(PROGRAMS.iter()) {
            if planned.kind == ProgramKind::Customisation && facts.segment != Segment::Enterprise {
                continue;
            }
            let share = if exit.is_some() { planned.leaves } else { planned.stays };
            if first_day >= anchor || !rng.gen_bool(share) {
                continue;
            }
            // The day drawn alike for those who stay and those who leave (so that being a member on a day says
            // nothing of a later exit but through the shares); one who would join after leaving does not.
            let joined = first_day + Duration::days(rng.gen_range(0..(anchor - first_day).num_days()));
            if exit.is_some_and(|exit| joined >= exit) {
                continue;
            }
            enrolments.push(Command::EnrolInProgram { program: *program, customer: *id, date: joined });
            let left = match exit {
                Some(exit) if rng.gen_bool(0.7) => Some(exit),
                None if rng.gen_bool(0.2) && joined < anchor => {
                    // A day after joining at the earliest: a membership holds a day at least.
                    Some(joined + Duration::days(rng.gen_range(1..=(anchor - joined).num_days())))
                }
                _ => None,
            };
            if let Some(date) = left {
                leaves.push(Command::LeaveProgram { program: *program, customer: *id, date });
            }
        }
    }
    let total = enrolments.len() + leaves.len();
    let commands: Box<dyn Iterator<Item = Command> + Send> = Box::new(enrolments.into_iter().chain(leaves));
    writer
        .write("programmes", total, MEMBERSHIP_BATCH, commands, |outcome| {
            matches!(outcome, Outcome::Stakeholder(_)).then_some(1)
        })
        .await
}

// ---------------------------------------------------------------------------------------------------------------
// Drawing values

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.gen_range(0..items.len())]
}

fn weighted<T: Copy>(rng: &mut ChaCha8Rng, table: &[(T, u32)]) -> T {
    let mut roll = rng.gen_range(0..table.iter().map(|(_, weight)| weight).sum::<u32>());
    for &(item, weight) in table {
        if roll < weight {
            return item;
        }
        roll -= weight;
    }
    table[table.len() - 1].0
}

/// An index in `0..len` that favours low indices: with `skew` 2 the first tenth gets about a third of the picks.
fn skewed(rng: &mut ChaCha8Rng, len: usize, skew: f64) -> usize {
    ((rng.gen::<f64>().powf(skew) * len as f64) as usize).min(len - 1)
}

/// A standard normal draw (Box–Muller), since `rand_distr` is not a dependency.
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let (u, v): (f64, f64) = (1.0 - rng.gen::<f64>(), rng.gen());
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// A heavy-tailed positive factor with median 1.
fn lognormal(rng: &mut ChaCha8Rng, sigma: f64) -> f64 {
    (sigma * normal(rng)).exp()
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

fn unit(value: f64) -> Probability {
    Probability::parse(round2(value.clamp(0.0, 1.0))).expect("clamped to [0, 1]")
}

fn money(value: f64) -> Amount {
    Amount::parse(round2(value.max(0.0))).expect("finite and not negative")
}

fn label(text: impl AsRef<str>) -> Label {
    Label::parse(text.as_ref()).expect("generated labels are short, trimmed and non-empty")
}

#[rustfmt::skip]
mod words {
    //! The word lists names, labels and notes are drawn from.
    use crate::domain::Channel;

    pub const FIRST: &[&str] = &["Anna", "Ben", "Clara", "David", "Elena", "Felix", "Grace", "Hugo", "Ines", "Jonas", "Karin", "Liam", "Maya", "Noah", "Olga", "Pavel", "Rosa", "Samir", "Tara", "Umar", "Vera", "Wim", "Yara", "Zoe", "Lars", "Mette", "Pedro", "Sofia", "Tom", "Priya"];
    pub const LAST: &[&str] = &["Andersen", "Baker", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Hansen", "Ivanova", "Jensen", "Keller", "Larsen", "Moreau", "Nielsen", "Okafor", "Petersen", "Quinn", "Rossi", "Schmidt", "Tanaka", "Urban", "Visser", "Walsh", "Young", "Novak", "Kowalski", "Berg", "Lindqvist", "Murphy", "Santos"];
    pub const PREFIX: &[&str] = &["Northwind", "Blue Harbor", "Granite", "Silverline", "Redwood", "Summit", "Evergreen", "Brightwater", "Ironbridge", "Oakridge", "Pioneer", "Keystone", "Harborview", "Crescent", "Meridian", "Riverside", "Westfield", "Falcon", "Cedar", "Horizon", "Atlas", "Beacon", "Copperleaf", "Lakeshore", "Sterling", "Highland", "Orchard", "Stonegate", "Maple", "Vantage"];
    pub const TRADE: &[&str] = &["Logistics", "Foods", "Manufacturing", "Retail", "Health", "Energy", "Pharma", "Textiles", "Engineering", "Hotels", "Motors", "Analytics", "Construction", "Farms", "Software", "Bakeries", "Clinics", "Outfitters", "Robotics", "Insurance"];
    pub const LEGAL: &[&str] = &["", "", " Ltd", " Inc", " GmbH", " & Co", " Group", " Holdings"];
    /// (category, the word a supplier of it is named with)
    pub const SUPPLY: &[(&str, &str)] = &[("Raw materials", "Metals"), ("Packaging", "Packaging"), ("Components", "Components"), ("Logistics", "Freight"), ("IT services", "Systems"), ("Facilities", "Facility Services"), ("Energy", "Power"), ("Professional services", "Consulting")];
    pub const DISTRIBUTION: &[&str] = &["Distribution", "Wholesale", "Trading", "Supply", "Retail", "Direct"];
    pub const CHANNELS: &[&str] = &["Wholesale", "Retail", "Agent", "Online"];
    pub const REGIONS: &[&str] = &["Nordics", "Benelux", "DACH", "Iberia", "UK & Ireland", "France", "Italy", "Central Europe", "Baltics", "North America"];
    pub const PAPER_ADJ: &[&str] = &["Daily", "Evening", "Morning", "Weekly", "Metro", "National", "Harbour", "Valley"];
    pub const PAPER_NOUN: &[&str] = &["Ledger", "Herald", "Tribune", "Courier", "Gazette", "Chronicle", "Observer", "Post", "Review", "Standard"];
    pub const TRADE_PRESS: &[&str] = &["Logistics Today", "Retail Insider", "Supply Chain Review", "Industry Weekly", "Tech Trade Journal", "Market Watch Radio", "The Procurement Podcast"];
    pub const AGENCIES: &[&str] = &["Competition Authority", "Ministry of Trade", "Data Protection Office", "Tax Administration", "Environmental Agency", "Consumer Protection Board", "Customs Service", "Financial Supervisory Authority"];
    pub const JURISDICTIONS: &[&str] = &["Denmark", "Norway", "Sweden", "Finland", "the Netherlands", "Belgium", "Germany", "Austria", "Ireland", "Spain", "Portugal", "France", "Italy", "Poland", "the European Union"];
    /// How many of the first [`ROLES`] the wiring relies on.
    pub const KEY_ROLES: usize = 5;
    /// (role, department, how common); the first [`KEY_ROLES`] are Account Manager, Procurement Lead, Channel
    /// Manager, Press Officer and Compliance Officer, in that order.
    pub const ROLES: &[(&str, &str, u32)] = &[("Account Manager", "Sales", 22), ("Procurement Lead", "Operations", 9), ("Channel Manager", "Sales", 9), ("Press Officer", "Communications", 6), ("Compliance Officer", "Legal & Compliance", 6), ("Software Engineer", "Engineering", 14), ("Product Manager", "Engineering", 4), ("Support Specialist", "Customer Service", 12), ("Marketing Analyst", "Communications", 7), ("Financial Controller", "Finance", 5), ("Logistics Planner", "Operations", 4), ("HR Business Partner", "People", 2)];
    pub const PRODUCT_LINES: &[&str] = &["Core Platform", "Analytics Suite", "Premium Support", "Hardware Kits", "Training Services"];

    /// Short notes that fit an interaction on `channel`.
    pub fn notes(channel: Channel) -> &'static [&'static str] {
        match channel {
            Channel::Meeting => &["Quarterly business review", "Renewal discussion", "Presented the roadmap"],
            Channel::Event => &["Met at the trade fair", "Attended the customer day"],
            Channel::Call => &["Follow-up on open questions", "Escalated a delivery delay"],
            Channel::Purchase => &["Repeat order", "First order of a new product line"],
            Channel::Support => &["Complaint about response time", "Resolved an invoicing error"],
            Channel::Message | Channel::Social => &["Congratulated on the anniversary", "Shared an article"],
            Channel::Email => &["Sent the new price list", "Answered a contract question"],
            Channel::Press => &["Enquiry about the annual results", "Interview request"],
            Channel::Filing => &["Annual compliance filing", "Data protection report"],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::LifecycleEvent;
    use crate::store::{SqliteStore, StakeholderQuery};
    use chrono::TimeZone;
    use std::sync::Mutex;

    fn anchor() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 30, 12, 0, 0).unwrap()
    }

    async fn demo_store(size: usize) -> (tempfile::TempDir, SqliteStore, DemoSummary) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("demo.db")).unwrap();
        let summary = generate(&store, &DemoOptions::new(size, anchor()), &|_| {}).await.unwrap();
        (dir, store, summary)
    }

    /// Every stakeholder, page by page, in id order.
    async fn all_stakeholders(store: &SqliteStore) -> Vec<crate::domain::Stakeholder> {
        let mut query = StakeholderQuery { first: 100, ..Default::default() };
        let mut all = Vec::new();
        loop {
            let page = store.list_stakeholders(&query).await.unwrap();
            query.after = page.items.last().map(|(_, cursor)| cursor.clone());
            all.extend(page.items.into_iter().map(|(stakeholder, _)| stakeholder));
            if !page.has_next_page {
                return all;
            }
        }
    }

    /// All interactions of each relationship, in the order of `ids`.
    async fn interactions(store: &SqliteStore, ids: &[RelationshipId]) -> Vec<crate::store::InteractionPage> {
        let mut pages =
            store.interaction_pages(ids, MAX_INTERACTIONS, None, Default::default(), Default::default()).await.unwrap();
        ids.iter().filter_map(|id| pages.remove(id)).collect()
    }

    /// Every relationship, in id order.
    async fn all_relationships(store: &SqliteStore, ids: &[StakeholderId]) -> Vec<crate::domain::Relationship> {
        let mut all: Vec<_> = store.relationships_of(ids).await.unwrap().into_values().flatten().collect();
        all.sort_by_key(|relationship| relationship.id);
        all.dedup_by_key(|relationship| relationship.id);
        all
    }

    #[tokio::test]
    async fn writes_every_kind_and_counts_what_it_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("demo.db")).unwrap();
        let reports = Mutex::new(Vec::new());
        let report = |progress: DemoProgress| reports.lock().unwrap().push(progress);
        let summary = generate(&store, &DemoOptions::new(300, anchor()), &report).await.unwrap();
        let counts = store.counts().await.unwrap();
        assert_eq!(summary.stakeholders, 300);
        assert_eq!(
            (summary.stakeholders, summary.relationships, summary.interactions),
            (counts.stakeholders, counts.relationships, counts.interactions)
        );
        assert_eq!(summary.by_kind.len(), StakeholderKind::ALL.len(), "{:?}", summary.by_kind);
        assert!(summary.by_kind.values().all(|count| *count > 0));
        assert!(summary.relationships > 300 && summary.interactions > summary.relationships, "{summary:?}");
        let reports = reports.into_inner().unwrap();
        for phase in ["stakeholders", "relationships", "interactions", "exits"] {
            let last = reports.iter().rev().find(|report| report.phase == phase).unwrap();
            assert_eq!(last.done, last.total, "{phase}");
        }
    }

    #[tokio::test]
    async fn same_options_give_the_same_graph() {
        let (_first_dir, first, first_summary) = demo_store(300).await;
        let (_second_dir, second, second_summary) = demo_store(300).await;
        assert_eq!(first_summary, second_summary);
        let stakeholders = all_stakeholders(&first).await;
        assert_eq!(stakeholders.len(), 300);
        assert_eq!(stakeholders, all_stakeholders(&second).await);
        let ids: Vec<_> = stakeholders.iter().map(|stakeholder| stakeholder.id).collect();
        let relationships = all_relationships(&first, &ids).await;
        assert_eq!(relationships, all_relationships(&second, &ids).await);
        let relationship_ids: Vec<_> = relationships.iter().map(|relationship| relationship.id).collect();
        assert_eq!(interactions(&first, &relationship_ids).await, interactions(&second, &relationship_ids).await);
    }

    #[tokio::test]
    async fn refuses_a_store_that_is_not_empty_and_a_tiny_graph() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("demo.db")).unwrap();
        let (record, _) = plan_government(&mut ChaCha8Rng::seed_from_u64(1), 1);
        store.apply(vec![Command::CreateStakeholder(record)], anchor()).await.unwrap();
        let before = store.counts().await.unwrap();
        let refused = generate(&store, &DemoOptions::new(300, anchor()), &|_| {}).await;
        assert!(matches!(refused, Err(DemoError::NotEmpty { stakeholders: 1 })), "{refused:?}");
        assert_eq!(store.counts().await.unwrap(), before);
        let tiny = generate(&store, &DemoOptions::new(MIN_SIZE - 1, anchor()), &|_| {}).await.unwrap_err();
        assert!(tiny.to_string().contains("at least 50"), "{tiny}");
    }

    #[tokio::test]
    async fn history_ends_at_the_anchor_with_managers_and_exits() {
        let (_dir, store, _) = demo_store(300).await;
        let stakeholders: BTreeMap<_, _> =
            all_stakeholders(&store).await.into_iter().map(|stakeholder| (stakeholder.id, stakeholder)).collect();
        let ids: Vec<_> = stakeholders.keys().copied().collect();
        let relationships = all_relationships(&store, &ids).await;
        assert!(relationships.iter().any(|relationship| relationship.rel_type == RelationshipType::Manages
            && stakeholders[&relationship.from].kind() == StakeholderKind::Employee
            && stakeholders[&relationship.to].kind() == StakeholderKind::Customer));
        let churned: Vec<_> = stakeholders
            .values()
            .filter_map(|stakeholder| match &stakeholder.details {
                KindDetails::Customer(CustomerDetails {
                    status: CustomerStatus::Churned, exit: Some(exit), ..
                }) => Some((stakeholder.id, exit.date)),
                _ => None,
            })
            .collect();
        assert!(!churned.is_empty());
        let relationship_ids: Vec<_> = relationships.iter().map(|relationship| relationship.id).collect();
        let pages = store
            .interaction_pages(&relationship_ids, MAX_INTERACTIONS, None, Default::default(), Default::default())
            .await
            .unwrap();
        for relationship in &relationships {
            let page = &pages[&relationship.id];
            assert!(!page.has_more);
            for interaction in &page.items {
                assert!(interaction.at <= anchor() && interaction.at >= relationship.since);
                for (customer, exit) in &churned {
                    if [relationship.from, relationship.to].contains(customer) {
                        assert!(interaction.at.date_naive() < *exit, "{interaction:?} after exit {exit}");
                    }
                }
            }
        }
    }

    #[tokio::test]
    async fn customers_join_over_years_and_leave_and_come_back_within_the_history() {
        let (_dir, store, _) = demo_store(2_000).await;
        let anchor = anchor().date_naive();
        let history_start = anchor - Duration::days(HISTORY_DAYS);
        let (mut customers, mut gone, mut back) = (0, 0, 0);
        for stakeholder in all_stakeholders(&store).await {
            let KindDetails::Customer(customer) = &stakeholder.details else { continue };
            customers += 1;
            if customer.status == CustomerStatus::Prospect {
                assert_eq!(customer.since, None, "a prospect is no customer yet");
                continue;
            }
            let since = customer.since.expect("every customer past prospect has its customer-since day");
            assert!(since < anchor && since >= anchor - Duration::days(8 * 365 + 31), "{since}");
            let events = customer.lifecycle();
            if let Some(first) = events.first() {
                assert!(first.date() >= since && first.date() >= history_start && first.date() < anchor, "{events:?}");
            }
            match events.last() {
                Some(LifecycleEvent::Exit { .. }) => {
                    assert_eq!(customer.status, CustomerStatus::Churned);
                    gone += 1;
                }
                Some(LifecycleEvent::WinBack { .. }) => {
                    assert_eq!(customer.status, CustomerStatus::WonBack);
                    assert!(events.windows(2).all(|pair| pair[0].date() <= pair[1].date()), "{events:?}");
                    back += 1;
                }
                None => assert!(!matches!(customer.status, CustomerStatus::Churned | CustomerStatus::WonBack)),
            }
        }
        // About 8% of customers gone and 4% back (the README says so), give or take the draw.
        let share = |count: u32| f64::from(count) / f64::from(customers);
        assert!((0.05..0.11).contains(&share(gone)), "{gone} of {customers} gone");
        assert!((0.02..0.06).contains(&share(back)), "{back} of {customers} back");
    }

    #[tokio::test]
    async fn programmes_have_members_who_churn_less_than_comparable_non_members() {
        let (_dir, store, _) = demo_store(2_000).await;
        let programs = store.programs().await.unwrap();
        let kinds: Vec<_> = programs.iter().map(|program| program.kind).collect();
        assert_eq!(kinds, [ProgramKind::Frequency, ProgramKind::Club, ProgramKind::Customisation]);
        let stakeholders = all_stakeholders(&store).await;
        let anchor = anchor().date_naive();
        let from = anchor - Duration::days(365);
        for program in &programs {
            let report = crate::engine::programs::program_retention(&stakeholders, program.id, from, anchor);
            assert!(report.compared_members.at_start >= 10, "{program:?}: {report:?}");
            let (members, expected) =
                (report.compared_members.churn_rate().unwrap(), report.expected_churn_rate.unwrap());
            assert!(
                members < expected,
                "{}: members churn {members}, comparable non-members {expected}: {report:?}",
                program.key
            );
            assert!(report.difference().unwrap() < 0.0);
        }
        // Enrolled within the history, after becoming a customer, left on or after joining, never overlapping.
        let mut members = 0;
        for stakeholder in &stakeholders {
            let KindDetails::Customer(customer) = &stakeholder.details else { continue };
            for membership in &customer.memberships {
                members += 1;
                assert!(membership.joined >= customer.since.unwrap() && membership.joined <= anchor, "{membership:?}");
                assert!(membership.left.is_none_or(|left| left >= membership.joined && left <= anchor));
            }
            let mut programs: Vec<_> = customer.memberships.iter().map(|membership| membership.program).collect();
            programs.sort();
            programs.dedup();
            assert_eq!(programs.len(), customer.memberships.len(), "one membership per programme in the demo");
        }
        assert!(members > 200, "{members} memberships");
    }

    /// `cargo test --release --lib demo::tests::large -- --ignored --nocapture`
    #[tokio::test(flavor = "multi_thread")]
    #[ignore = "takes a while; measures the 100k-stakeholder demo"]
    async fn large_demo_is_fast() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("demo.db")).unwrap();
        let started = std::time::Instant::now();
        let summary = generate(&store, &DemoOptions::new(100_000, anchor()), &|progress| {
            eprintln!(
                "{:>6.1}s {} {}/{}",
                started.elapsed().as_secs_f64(),
                progress.phase,
                progress.done,
                progress.total
            )
        })
        .await
        .unwrap();
        eprintln!("{summary:?} in {:?}", started.elapsed());
    }
}
