//! `stakegraph import`: stakeholders, relationships and interactions from CSV files (with a header) or JSON Lines,
//! upserted by key through the store's one write path, all or nothing. Every problem is found before anything is written and
//! reported as `file:line:column: field: what is wrong; how to fix it` (all of them, not just the first); a
//! problem-free run that is repeated changes nothing and logs nothing.
//!
//! Columns (CSV) and members (JSON) are named in snake_case. Stakeholders: `kind` (CUSTOMER, SUPPLIER, DISTRIBUTOR,
//! EMPLOYEE, MEDIA, GOVERNMENT), `key`, `name`, `power`, `interest`, `private` (true or false; default false),
//! `markets` (the extra markets, `|`-separated), and the fields of the kind: `status`, `segment`,
//! `lifetime_value`, `customer_since`, `retention_cost` (customers), `category` (suppliers), `channel`, `region`
//! (distributors), `role`, `department`, `candidate` (employees), `outlet`, `reach` (media), `agency`,
//! `jurisdiction` (government bodies). Relationships: `from_key`, `to_key`, `type`, `level`, `bonds`
//! (`|`-separated), `trust`, `commitment`, `since` (RFC 3339, or a day), `basis`. Interactions: `key` (your own identifier
//! for it, such as a mail's Message-ID: a recorded key is not recorded again), `from_key`, `to_key` and `type` (its
//! relationship, in a relationship file or the database), `at` (RFC 3339, or a day; not in the future), `channel`,
//! `direction` (INBOUND or OUTBOUND), `sentiment` (in [−1, 1]; default 0), `amount`, `product_line`, `topic`,
//! `note`. An empty cell (CSV) or a null (JSON) is an
//! absent value: a new stakeholder takes the default (not private, no extra markets, PROSPECT, not a candidate), an
//! existing one keeps what it has. A customer who left comes back only through status WON_BACK. The column of a CSV problem is the field's number; of a JSON one, where its member starts.

use crate::domain::{
    Amount, Basis, Bond, BondSet, Channel, Command, CustomerDetails, CustomerStatus, DetailsPatch, Direction,
    ExitReason, KeyedInteraction, KindDetails, Label, Level, LifecycleEvent, Market, MarketSet, NewInteraction,
    NewProgram, NewStakeholder, PerceivedValue, Probability, ProgramKind, RelationshipId, RelationshipType,
    RelationshipUpsert, Sentiment, StakeholderId, StakeholderKind, StakeholderPatch, Topic,
};
use crate::store::{GraphStore, StoreError};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

/// One problem in an input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file, as given.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (a CSV field's number; a JSON member's character column).
    pub column: usize,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
    }
}

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Records {
    /// Stakeholders.
    Stakeholders,
    /// Relationships.
    Relationships,
    /// Interactions.
    Interactions,
    /// Relationship-marketing programmes.
    Programs,
    /// Customers' programme memberships.
    Memberships,
    /// Customers' exits and win-backs.
    Lifecycle,
}

/// One record read from a file: where it is and its values by name, with the column of each.
#[derive(Debug)]
struct Row {
    line: usize,
    values: Vec<(Arc<str>, usize, String)>,
}

impl Row {
    /// The column of `name`, empty or not (CSV: its place in the header), if the row has it.
    fn column(&self, name: &str) -> Option<usize> {
        self.values.iter().find(|(field, _, _)| &**field == name).map(|(_, column, _)| *column)
    }

    /// The value of `name`, if given and not empty, with its column.
    fn get(&self, name: &str) -> Option<(&str, usize)> {
        self.values
            .iter()
            .find(|(field, _, value)| &**field == name && !value.is_empty())
            .map(|(_, column, value)| (value.as_str(), *column))
    }
}

/// The rows of `path` and the problems met reading it (bad UTF-8, bad JSON, a truncated record, ragged CSV).
fn read_rows(path: &Path, file: &str) -> std::io::Result<(Vec<Row>, Vec<Problem>)> {
    let bytes = std::fs::read(path)?;
    let json = matches!(path.extension().and_then(|ext| ext.to_str()), Some("jsonl" | "ndjson" | "json"));
    Ok(if json { json_rows(&bytes, file) } else { csv_rows(&bytes, file) })
}

fn problem(file: &str, line: usize, column: usize, message: impl Into<String>) -> Problem {
    Problem { file: file.to_owned(), line, column, message: message.into() }
}

fn csv_rows(bytes: &[u8], file: &str) -> (Vec<Row>, Vec<Problem>) {
    // Ragged rows are read and reported, so that one bad row does not hide the rest of the file.
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(bytes);
    let mut problems = Vec::new();
    let header: Vec<Arc<str>> = match reader.byte_headers() {
        Ok(header) => header.iter().map(|name| Arc::from(String::from_utf8_lossy(name).trim())).collect(),
        Err(error) => return (Vec::new(), vec![problem(file, 1, 1, format!("the header cannot be read: {error}"))]),
    };
    // Lines counted from byte offsets (the reader's own line count is off after CRLF and blank lines).
    let (mut counted_to, mut line) = (0, 1);
    let mut line_of = |byte: usize| {
        let mut start = byte.min(bytes.len());
        while start < bytes.len() && matches!(bytes[start], b'\r' | b'\n') {
            start += 1;
        }
        line += bytes[counted_to.min(start)..start].iter().filter(|byte| **byte == b'\n').count();
        counted_to = counted_to.max(start);
        line
    };
    let mut rows = Vec::new();
    let mut record = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(error) => {
                let at = error.position().map_or(bytes.len(), |position| position.byte() as usize);
                problems.push(problem(file, line_of(at), 1, format!("{error}; fix the quoting of this row")));
                break;
            }
        }
        let line = line_of(record.position().map_or(0, |position| position.byte() as usize));
        if record.len() != header.len() {
            problems.push(problem(
                file,
                line,
                1,
                format!(
                    "has {} fields, the header {}; give every row as many fields as the header",
                    record.len(),
                    header.len()
                ),
            ));
            continue;
        }
        let mut values = Vec::with_capacity(record.len());
        for (index, field) in record.iter().enumerate() {
            let Some(name) = header.get(index) else { continue };
            if std::str::from_utf8(field).is_err() {
                problems.push(problem(
                    file,
                    line,
                    index + 1,
                    format!("{name}: is not valid UTF-8; save the file as UTF-8"),
                ));
            }
            values.push((name.clone(), index + 1, String::from_utf8_lossy(field).trim().to_owned()));
        }
        rows.push(Row { line, values });
    }
    (rows, problems)
}

fn json_rows(bytes: &[u8], file: &str) -> (Vec<Row>, Vec<Problem>) {
    let (mut rows, mut problems) = (Vec::new(), Vec::new());
    for (index, raw) in bytes.split(|byte| *byte == b'\n').enumerate() {
        let line = index + 1;
        let text = match std::str::from_utf8(raw) {
            Ok(text) => text.trim_end_matches('\r'),
            Err(error) => {
                let column = String::from_utf8_lossy(&raw[..error.valid_up_to()]).chars().count() + 1;
                problems.push(problem(file, line, column, "is not valid UTF-8; save the file as UTF-8"));
                continue;
            }
        };
        if text.trim().is_empty() {
            continue;
        }
        let object: serde_json::Map<String, serde_json::Value> = match serde_json::from_str(text) {
            Ok(object) => object,
            Err(error) => {
                problems.push(problem(
                    file,
                    line,
                    error.column().max(1),
                    format!("not a JSON object ({error}); give one object per line"),
                ));
                continue;
            }
        };
        let mut values = Vec::with_capacity(object.len());
        for (name, value) in object {
            let name: Arc<str> = Arc::from(name);
            let column = text.find(&format!("\"{name}\"")).map_or(1, |at| text[..at].chars().count() + 1);
            let value = match value {
                serde_json::Value::Null => continue,
                serde_json::Value::String(text) => text.trim().to_owned(),
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(|item| item.as_str().map_or_else(|| item.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join("|"),
                other => other.to_string(),
            };
            values.push((name, column, value));
        }
        rows.push(Row { line, values });
    }
    (rows, problems)
}

/// The fields of one row as a record reads them, gathering problems.
struct Fields<'r> {
    file: &'r str,
    row: &'r Row,
    problems: &'r mut Vec<Problem>,
}

impl Fields<'_> {
    /// The value of `name`, if given and not empty, with its column.
    fn get(&self, name: &str) -> Option<(&str, usize)> {
        self.row.get(name)
    }

    fn report(&mut self, column: usize, name: &str, message: impl fmt::Display) {
        self.problems.push(problem(self.file, self.row.line, column, format!("{name}: {message}")));
    }

    /// The value of `name` parsed by `parse`; `None` (and a problem) when it does not parse.
    fn optional<T>(&mut self, name: &str, parse: impl FnOnce(&str) -> Result<T, String>) -> Option<T> {
        let (text, column) = self.get(name)?;
        match parse(text) {
            Ok(value) => Some(value),
            Err(message) => {
                // The domain's messages may start with the value already, quoted or not.
                let message = message.trim_start_matches(&format!("'{text}' ")).trim_start_matches(&format!("{text} "));
                let message = format!("'{text}' {message}");
                self.report(column, name, message);
                None
            }
        }
    }

    /// The value of `name`, which must be given.
    fn required<T>(&mut self, name: &str, parse: impl FnOnce(&str) -> Result<T, String>) -> Option<T> {
        if self.get(name).is_none() {
            let column =
                self.row.values.iter().find(|(field, ..)| &**field == name).map_or(1, |(_, column, _)| *column);
            self.report(column, name, "is missing; every row needs it");
            return None;
        }
        self.optional(name, parse)
    }

    /// Reports every given field `allowed` does not name.
    fn refuse_others(&mut self, allowed: &[&str], what: &str) {
        let extra: Vec<(Arc<str>, usize)> = self
            .row
            .values
            .iter()
            .filter(|(name, _, value)| !value.is_empty() && !allowed.contains(&&**name))
            .map(|(name, column, _)| (name.clone(), *column))
            .collect();
        for (name, column) in extra {
            self.report(column, &name, format!("is not a field of {what}; leave it empty, or check its spelling"));
        }
    }
}

fn label(text: &str) -> Result<Label, String> {
    Label::parse(text).map_err(|error| error.0)
}

fn number<T>(
    parse: impl FnOnce(f64) -> Result<T, crate::domain::InvalidValue>,
) -> impl FnOnce(&str) -> Result<T, String> {
    move |text| {
        let value: f64 = text.parse().map_err(|_| "is not a number; write it like 0.5".to_owned())?;
        parse(value).map_err(|error| error.0)
    }
}

fn word<T: FromStr<Err = crate::domain::InvalidValue>>(text: &str) -> Result<T, String> {
    T::from_str(text).map_err(|error| error.0)
}

fn flag(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err("is not true or false".to_owned()),
    }
}

fn words<T: FromStr<Err = crate::domain::InvalidValue>>(text: &str) -> Result<Vec<T>, String> {
    text.split('|').map(str::trim).filter(|item| !item.is_empty()).map(word).collect()
}

fn day(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| "is not a day; write it as YYYY-MM-DD".to_owned())
}

fn time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.to_utc())
        .or_else(|_| day(text).map(|day| day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()))
        .map_err(|_| "is not a time; write it as 2026-06-01T09:30:00Z or 2026-06-01".to_owned())
}

const COMMON: &[&str] = &["kind", "key", "name", "power", "interest", "private", "markets"];

/// Every column of a stakeholder file (each kind uses the common ones and its own).
pub const STAKEHOLDER_FIELDS: &[&str] = &[
    "kind",
    "key",
    "name",
    "power",
    "interest",
    "private",
    "markets",
    "status",
    "segment",
    "lifetime_value",
    "customer_since",
    "retention_cost",
    "core_value",
    "services_value",
    "price",
    "relationship_costs",
    "category",
    "channel",
    "region",
    "role",
    "department",
    "candidate",
    "outlet",
    "reach",
    "agency",
    "jurisdiction",
];

/// The stakeholder of one row (the record to create, and the patch of the fields the row gives, for a
/// stakeholder that exists: an absent or empty field keeps its stored value), or `None` with its problems reported.
fn stakeholder(fields: &mut Fields<'_>) -> Option<(NewStakeholder, StakeholderPatch)> {
    let kind: Option<StakeholderKind> = fields.required("kind", word);
    let key = fields.required("key", label);
    let name = fields.required("name", label);
    let power = fields.required("power", number(Probability::parse));
    let interest = fields.required("interest", number(Probability::parse));
    let private = fields.optional("private", flag);
    let markets: Option<Vec<Market>> = fields.optional("markets", words);
    let own: &[&str] = match kind? {
        StakeholderKind::Customer => &[
            "status",
            "segment",
            "lifetime_value",
            "customer_since",
            "retention_cost",
            "core_value",
            "services_value",
            "price",
            "relationship_costs",
        ],
        StakeholderKind::Supplier => &["category"],
        StakeholderKind::Distributor => &["channel", "region"],
        StakeholderKind::Employee => &["role", "department", "candidate"],
        StakeholderKind::Media => &["outlet", "reach"],
        StakeholderKind::Government => &["agency", "jurisdiction"],
    };
    let allowed: Vec<&str> = COMMON.iter().chain(own).copied().collect();
    fields.refuse_others(&allowed, &format!("a {}", kind?.as_str()));
    let problems_before = fields.problems.len();
    let (details, details_patch) = match kind? {
        StakeholderKind::Customer => {
            let status: Option<CustomerStatus> = fields.optional("status", word);
            let segment = fields.optional("segment", label);
            let lifetime_value = fields.optional("lifetime_value", number(Amount::parse));
            let since = fields.optional("customer_since", day);
            let retention_cost = fields.optional("retention_cost", number(Amount::parse));
            let perceived_value = perceived(fields);
            let patch = DetailsPatch::Customer {
                status,
                segment: segment.clone(),
                lifetime_value,
                perceived_value,
                since,
                retention_cost,
            };
            let details = KindDetails::Customer(CustomerDetails {
                status: status.unwrap_or(CustomerStatus::Prospect),
                segment,
                lifetime_value,
                exit: None,
                perceived_value,
                since,
                lifecycle: Vec::new(),
                memberships: Vec::new(),
                retention_cost,
            });
            (details, patch)
        }
        StakeholderKind::Supplier => {
            let category = fields.optional("category", label);
            (KindDetails::Supplier { category: category.clone() }, DetailsPatch::Supplier { category })
        }
        StakeholderKind::Distributor => {
            let (channel, region) = (fields.optional("channel", label), fields.optional("region", label));
            let patch = DetailsPatch::Distributor { channel: channel.clone(), region: region.clone() };
            (KindDetails::Distributor { channel, region }, patch)
        }
        StakeholderKind::Employee => {
            let (role, department) = (fields.optional("role", label), fields.optional("department", label));
            let candidate = fields.optional("candidate", flag);
            let patch = DetailsPatch::Employee { role: role.clone(), department: department.clone(), candidate };
            (KindDetails::Employee { role, department, candidate: candidate.unwrap_or(false) }, patch)
        }
        StakeholderKind::Media => {
            let outlet = fields.optional("outlet", label);
            let reach = fields.optional("reach", |text| {
                text.parse::<u64>().map_err(|_| "is not an audience size; write a whole number of 0 or more".into())
            });
            (KindDetails::Media { outlet: outlet.clone(), reach }, DetailsPatch::Media { outlet, reach })
        }
        StakeholderKind::Government => {
            let (agency, jurisdiction) = (fields.optional("agency", label), fields.optional("jurisdiction", label));
            let patch = DetailsPatch::Government { agency: agency.clone(), jurisdiction: jurisdiction.clone() };
            (KindDetails::Government { agency, jurisdiction }, patch)
        }
    };
    if fields.problems.len() > problems_before {
        return None;
    }
    let extra_markets = markets.map(MarketSet::of);
    let patch =
        StakeholderPatch { name: name.clone(), power, interest, private, extra_markets, details: Some(details_patch) };
    let new = NewStakeholder {
        key: key?,
        name: name?,
        power: power?,
        interest: interest?,
        private: private.unwrap_or(false),
        extra_markets: extra_markets.unwrap_or(MarketSet::EMPTY),
        details,
    };
    Some((new, patch))
}

/// The columns of a relationship file.
pub const RELATIONSHIP_FIELDS: &[&str] =
    &["from_key", "to_key", "type", "level", "bonds", "trust", "commitment", "since", "basis"];

/// The relationship of one row (its ends by key), or `None` with its problems reported.
fn relationship(fields: &mut Fields<'_>) -> Option<(Label, Label, RelationshipUpsert)> {
    fields.refuse_others(RELATIONSHIP_FIELDS, "a relationship");
    let from = fields.required("from_key", label);
    let to = fields.required("to_key", label);
    let rel_type: Option<RelationshipType> = fields.required("type", word);
    let level: Option<Level> = fields.optional("level", word);
    let bonds: Option<Vec<Bond>> = fields.optional("bonds", words);
    let trust = fields.optional("trust", number(Probability::parse));
    let commitment = fields.optional("commitment", number(Probability::parse));
    let since = fields.optional("since", time);
    let basis: Option<Basis> = fields.optional("basis", word);
    let upsert = RelationshipUpsert {
        from: StakeholderId(0),
        to: StakeholderId(0),
        rel_type: rel_type?,
        level,
        bonds: bonds.map(BondSet::of),
        trust,
        commitment,
        since,
        basis,
    };
    Some((from?, to?, upsert))
}

/// The files to import.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// Stakeholder files.
    pub stakeholders: Vec<PathBuf>,
    /// Relationship files.
    pub relationships: Vec<PathBuf>,
    /// Interaction files.
    pub interactions: Vec<PathBuf>,
    /// Programme files.
    pub programs: Vec<PathBuf>,
    /// Membership files.
    pub memberships: Vec<PathBuf>,
    /// Lifecycle files (customers' exits and win-backs).
    pub lifecycle: Vec<PathBuf>,
}

impl Inputs {
    /// How many files.
    pub fn len(&self) -> usize {
        self.stakeholders.len()
            + self.relationships.len()
            + self.interactions.len()
            + self.programs.len()
            + self.memberships.len()
            + self.lifecycle.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How many interaction rows one command records at most (one change event per relationship per command).
pub const INTERACTIONS_PER_COMMAND: usize = 1_000;

/// One input file, read.
struct File {
    records: Records,
    name: String,
    rows: Vec<Row>,
    /// What reading it found wrong (a file that cannot be read is one problem at line 0).
    problems: Vec<Problem>,
}

/// The files of an import, each read once.
pub struct Files {
    files: Vec<File>,
    /// Every relationship a relationship file names (ends by key and type, as written; problems or not).
    named: std::collections::HashSet<Ends>,
    /// The customer keys the lifecycle files name: their status comes from their lifecycle.
    with_lifecycle: std::collections::HashSet<String>,
}

/// Reads every file of `inputs`, in the order they are written: stakeholders, lifecycles, programmes, relationships,
/// interactions, memberships.
pub fn read(inputs: &Inputs) -> Files {
    let mut files = Vec::new();
    for (records, paths) in [
        (Records::Stakeholders, &inputs.stakeholders),
        (Records::Lifecycle, &inputs.lifecycle),
        (Records::Programs, &inputs.programs),
        (Records::Relationships, &inputs.relationships),
        (Records::Interactions, &inputs.interactions),
        (Records::Memberships, &inputs.memberships),
    ] {
        for path in paths {
            let name = path.display().to_string();
            let (rows, problems) = read_rows(path, &name).unwrap_or_else(|error| {
                (Vec::new(), vec![problem(&name, 0, 0, format!("cannot be read: {error}; check the path"))])
            });
            files.push(File { records, name, rows, problems });
        }
    }
    let named = files
        .iter()
        .filter(|file| file.records == Records::Relationships)
        .flat_map(|file| &file.rows)
        .filter_map(ends_of)
        .collect();
    let with_lifecycle = files
        .iter()
        .filter(|file| file.records == Records::Lifecycle)
        .flat_map(|file| &file.rows)
        .filter_map(|row| value(row, "customer_key").map(str::to_owned))
        .collect();
    Files { files, named, with_lifecycle }
}

/// The value of `name` in `row`, if given.
fn value<'r>(row: &'r Row, name: &str) -> Option<&'r str> {
    row.get(name).map(|(value, _)| value)
}

/// A relationship's ends by key and its type, as a row names them (unparsed).
type Ends = (String, String, String);

fn ends_of(row: &Row) -> Option<Ends> {
    Some((value(row, "from_key")?.to_owned(), value(row, "to_key")?.to_owned(), value(row, "type")?.to_owned()))
}

impl Files {
    fn of(&self, records: Records) -> impl Iterator<Item = &File> {
        self.files.iter().filter(move |file| file.records == records)
    }

    /// How many files there are.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The keys the relationship and interaction files name that no stakeholder file gives, each once: those are
    /// looked up in the database before [`plan`].
    pub fn referenced_keys(&self) -> Vec<String> {
        let mut seen: std::collections::HashSet<&str> =
            self.of(Records::Stakeholders).flat_map(|file| &file.rows).filter_map(|row| value(row, "key")).collect();
        let mut keys = Vec::new();
        let referring = self.of(Records::Relationships).chain(self.of(Records::Interactions));
        for file in referring.chain(self.of(Records::Memberships)).chain(self.of(Records::Lifecycle)) {
            for row in &file.rows {
                for name in ["from_key", "to_key", "customer_key"] {
                    if let Some(key) = value(row, name) {
                        if seen.insert(key) {
                            keys.push(key.to_owned());
                        }
                    }
                }
            }
        }
        keys
    }

    /// The relationships the interaction files name that no relationship file gives, each once (ends by key and
    /// type): whether they exist is looked up in the database before [`plan`].
    pub fn referenced_relationships(&self) -> Vec<(String, String, RelationshipType)> {
        let mut seen = std::collections::HashSet::new();
        let mut wanted = Vec::new();
        for row in self.of(Records::Interactions).flat_map(|file| &file.rows) {
            let Some(ends) = ends_of(row) else { continue };
            if self.named.contains(&ends) || !seen.insert(ends.clone()) {
                continue;
            }
            if let Ok(rel_type) = ends.2.parse() {
                wanted.push((ends.0, ends.1, rel_type));
            }
        }
        wanted
    }
}

/// What a run will write: its commands (stakeholders first, then relationships, then interactions) and where
/// each of their rows came from.
#[derive(Debug, Default)]
pub struct Plan {
    /// The commands, in file and line order.
    pub commands: Vec<Command>,
    /// How many rows each command writes (one, or up to [`INTERACTIONS_PER_COMMAND`] interactions).
    pub rows_of: Vec<usize>,
    /// `file:line` of each row, in command order.
    pub origins: Vec<String>,
    /// Stakeholder rows.
    pub stakeholders: usize,
    /// Relationship rows.
    pub relationships: usize,
    /// Interaction rows.
    pub interactions: usize,
    /// Programme rows.
    pub programs: usize,
    /// Membership rows.
    pub memberships: usize,
    /// Lifecycle rows.
    pub lifecycle: usize,
}

/// The column (CSV) or member (JSON) of a field the store names in camelCase, as a file names it.
pub fn column_of(field: &str) -> String {
    let mut column = String::with_capacity(field.len() + 2);
    for character in field.chars() {
        if character.is_ascii_uppercase() {
            column.push('_');
            column.push(character.to_ascii_lowercase());
        } else {
            column.push(character);
        }
    }
    column
}

/// What the database says of a key that no stakeholder file gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// A live stakeholder of this kind has it.
    Live(StakeholderKind),
    /// An archived stakeholder has it: it can no longer change, nor gain relationships.
    Archived,
}

/// What the database holds that the files refer to without giving it.
pub trait Database {
    /// What holds `key` (`None`: no stakeholder has it).
    fn key(&self, key: &str) -> Option<Known>;
    /// Whether the relationship of type `rel_type` from the owner of `from` to the owner of `to` exists.
    fn relationship(&self, from: &str, to: &str, rel_type: RelationshipType) -> bool;
    /// The programme with key `key`, if there is one.
    fn program(&self, key: &str) -> Option<&crate::domain::Program>;
}

/// The columns of a programme file.
pub const PROGRAM_FIELDS: &[&str] = &["key", "name", "kind", "markets"];

/// The columns of a membership file.
pub const MEMBERSHIP_FIELDS: &[&str] = &["customer_key", "program_key", "joined", "left"];

/// The programme of one row, or `None` with its problems reported.
fn program(fields: &mut Fields<'_>) -> Option<NewProgram> {
    fields.refuse_others(PROGRAM_FIELDS, "a programme");
    let key = fields.required("key", label);
    let name = fields.required("name", label);
    let kind: Option<ProgramKind> = fields.required("kind", word);
    let markets: Option<Vec<Market>> = fields.optional("markets", words);
    Some(NewProgram { key: key?, name: name?, kind: kind?, markets: MarketSet::of(markets.unwrap_or_default()) })
}

/// The membership of one row (customer key, programme key, joined, left), or `None` with its problems reported.
fn membership(fields: &mut Fields<'_>) -> Option<(Label, Label, NaiveDate, Option<NaiveDate>)> {
    fields.refuse_others(MEMBERSHIP_FIELDS, "a membership");
    let customer = fields.required("customer_key", label);
    let program = fields.required("program_key", label);
    let joined = fields.required("joined", day);
    let left = fields.optional("left", day);
    let (joined, left) = (joined?, left);
    if let Some(day) = left.filter(|left| *left <= joined) {
        let column = fields.get("left").map_or(1, |(_, column)| column);
        fields.report(
            column,
            "left",
            format!("'{day}' is not after joined ({joined}); a membership lasts a day at least"),
        );
        return None;
    }
    Some((customer?, program?, joined, left))
}

/// The columns of a customer's perceived value: all four, or none.
const PERCEIVED_VALUE: [&str; 4] = ["core_value", "services_value", "price", "relationship_costs"];

/// A customer's perceived value from its four columns (`None` when none is given, or with a problem reported).
fn perceived(fields: &mut Fields<'_>) -> Option<PerceivedValue> {
    let given = PERCEIVED_VALUE.iter().filter(|name| fields.get(name).is_some()).count();
    if given == 0 {
        return None;
    }
    if given < PERCEIVED_VALUE.len() {
        let missing = PERCEIVED_VALUE.iter().find(|name| fields.get(name).is_none()).expect("one is missing");
        let column = fields.row.column(missing).or_else(|| fields.get(PERCEIVED_VALUE[0]).map(|(_, column)| column));
        fields.report(
            column.unwrap_or(1),
            missing,
            "the perceived value takes all four of core_value, services_value, price and relationship_costs, or none",
        );
        return None;
    }
    let [core, services, price, costs] = PERCEIVED_VALUE.map(|name| fields.optional(name, number(Amount::parse)));
    let column = fields.get("price").map_or(1, |(_, column)| column);
    match PerceivedValue::new(core?, services?, price?, costs?) {
        Ok(value) => Some(value),
        Err(error) => {
            fields.report(column, "price", error.0);
            None
        }
    }
}

/// The columns of a lifecycle file: a customer's exits and win-backs, in date order (`reason` for an exit only).
pub const LIFECYCLE_FIELDS: &[&str] = &["customer_key", "event", "date", "reason"];

/// The customer key and lifecycle event of one row, or `None` with its problems reported.
fn lifecycle_event(fields: &mut Fields<'_>) -> Option<(Label, LifecycleEvent)> {
    fields.refuse_others(LIFECYCLE_FIELDS, "a lifecycle event");
    let customer = fields.required("customer_key", label);
    let event = fields.required("event", |text| match text {
        LifecycleEvent::EXIT | LifecycleEvent::WIN_BACK => Ok(text == LifecycleEvent::EXIT),
        other => Err(format!("'{other}' is not a lifecycle event; use EXIT or WIN_BACK")),
    });
    let date = fields.required("date", day);
    let reason: Option<ExitReason> = fields.optional("reason", word);
    let event = match (event?, reason) {
        (true, Some(reason)) => LifecycleEvent::Exit { reason, date: date? },
        (true, None) => {
            let column = fields.row.column("reason").unwrap_or(1);
            fields.report(column, "reason", "an EXIT needs its reason (one of the ExitReason values, e.g. PRICE)");
            return None;
        }
        (false, None) => LifecycleEvent::WinBack { date: date? },
        (false, Some(_)) => {
            let column = fields.get("reason").map_or(1, |(_, column)| column);
            fields.report(column, "reason", "a WIN_BACK has no reason; leave it empty");
            return None;
        }
    };
    Some((customer?, event))
}

/// The columns of an interaction file.
pub const INTERACTION_FIELDS: &[&str] = &[
    "key",
    "from_key",
    "to_key",
    "type",
    "at",
    "channel",
    "direction",
    "sentiment",
    "amount",
    "product_line",
    "topic",
    "note",
];

/// The interaction of one row (its relationship by its ends' keys and type), or `None` with its problems reported.
fn interaction(fields: &mut Fields<'_>, now: DateTime<Utc>) -> Option<KeyedInteraction> {
    fields.refuse_others(INTERACTION_FIELDS, "an interaction");
    let key = fields.required("key", label);
    let from = fields.required("from_key", label);
    let to = fields.required("to_key", label);
    let rel_type: Option<RelationshipType> = fields.required("type", word);
    let at = fields.required("at", |text| {
        let at = time(text)?;
        NewInteraction::future_check(at, now).map(|()| at).map_err(|_| {
            let now = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            format!("is in the future; record interactions once they have happened (it is now {now})")
        })
    });
    let channel: Option<Channel> = fields.required("channel", word);
    let direction: Option<Direction> = fields.required("direction", word);
    let sentiment = fields.optional("sentiment", number(Sentiment::parse));
    let amount = fields.optional("amount", number(Amount::parse));
    let product_line = fields.optional("product_line", label);
    let topic: Option<Topic> = fields.optional("topic", word);
    let note = fields.optional("note", |text| crate::domain::parse_note(text).map_err(|error| error.0)).flatten();
    let interaction = NewInteraction {
        relationship: RelationshipId(0),
        at: at?,
        channel: channel?,
        direction: direction?,
        sentiment: sentiment.unwrap_or_else(|| Sentiment::parse(0.0).expect("0 is a sentiment")),
        amount,
        product_line,
        topic,
        note,
        key: Some(key?),
    };
    Some(KeyedInteraction { from: from?, to: to?, rel_type: rel_type?, interaction })
}

/// Where each key and relationship first appears, and what the database adds: how rows refer to others.
struct Seen<'d, D> {
    database: &'d D,
    /// Each key's first place and kind, in the stakeholder files.
    keys: HashMap<String, (String, StakeholderKind)>,
    /// Each relationship's first place, in the relationship files.
    ends: HashMap<(Label, Label, RelationshipType), String>,
    /// Every relationship a relationship file names (problems or not), so that its interactions are not reported
    /// as well.
    named: &'d std::collections::HashSet<Ends>,
    /// Each interaction key's first place.
    interactions: HashMap<Label, (usize, usize)>,
    /// Each programme key's first place.
    programs: HashMap<Label, String>,
    /// Each membership's first place, by customer, programme and day joined.
    memberships: HashMap<(Label, Label, NaiveDate), String>,
    /// The status a customer with a lifecycle is given in a stakeholder file, with where (file, line, column).
    statuses: HashMap<Label, (CustomerStatus, String, usize, usize)>,
    /// Each customer's lifecycle so far in the files: its last event, and that event's command.
    lifecycles: HashMap<Label, (usize, LifecycleEvent, usize)>,
}

impl<D: Database> Seen<'_, D> {
    /// Whether `customer` is a live customer's key, reporting at `column` why not (`only`: what only customers do,
    /// as a clause: "only customers join programmes").
    fn customer(&self, fields: &mut Fields<'_>, customer: &Label, column: usize, only: &str) -> bool {
        let name = "customer_key";
        match self.key(customer.as_str()) {
            Some(Known::Live(StakeholderKind::Customer)) => return true,
            Some(Known::Live(kind)) => {
                fields.report(column, name, format!("'{customer}' is a {}; {only}", kind.as_str()))
            }
            Some(Known::Archived) => fields.report(
                column,
                name,
                format!("'{customer}' belongs to an archived stakeholder, which can no longer change"),
            ),
            None => fields.report(
                column,
                name,
                format!("no stakeholder has key '{customer}'; add it to a stakeholder file or fix the key"),
            ),
        }
        false
    }

    /// What holds `key`: a stakeholder file, or the database.
    fn key(&self, key: &str) -> Option<Known> {
        match self.keys.get(key) {
            Some((_, kind)) => Some(Known::Live(*kind)),
            None => self.database.key(key),
        }
    }

    /// The kinds of a relationship's live ends, or `None` with the ends' problems reported.
    fn live_ends(
        &self,
        fields: &mut Fields<'_>,
        from: &Label,
        to: &Label,
    ) -> Option<(StakeholderKind, StakeholderKind)> {
        let mut kinds = Vec::with_capacity(2);
        for (key, name) in [(from, "from_key"), (to, "to_key")] {
            let column = fields.get(name).map_or(1, |(_, column)| column);
            match self.key(key.as_str()) {
                Some(Known::Live(kind)) => kinds.push(kind),
                Some(Known::Archived) => fields.report(
                    column,
                    name,
                    format!(
                        "'{key}' belongs to an archived stakeholder, which gains no relationships nor interactions; \
                         use a live stakeholder's key"
                    ),
                ),
                None => fields.report(
                    column,
                    name,
                    format!("no stakeholder has key '{key}'; add it to a stakeholder file or fix the key"),
                ),
            }
        }
        match kinds[..] {
            [from, to] => Some((from, to)),
            _ => None,
        }
    }
}

/// Reads and checks every row: the plan, or every problem found. `database` says what the database holds of the
/// keys and relationships the files refer to without giving them; `now` is the time interactions may not be
/// later than.
pub fn plan(files: &Files, database: &impl Database, now: DateTime<Utc>) -> Result<Plan, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut plan = Plan::default();
    let mut seen = Seen {
        database,
        keys: HashMap::new(),
        ends: HashMap::new(),
        named: &files.named,
        interactions: HashMap::new(),
        programs: HashMap::new(),
        memberships: HashMap::new(),
        statuses: HashMap::new(),
        lifecycles: HashMap::new(),
    };
    for (index, input) in files.files.iter().enumerate() {
        let file = &input.name;
        let first_of_file = problems.len();
        problems.extend(input.problems.iter().cloned());
        let mut pending: Vec<KeyedInteraction> = Vec::new();
        for row in &input.rows {
            let mut fields = Fields { file, row, problems: &mut problems };
            let origin = format!("{file}:{}", row.line);
            match input.records {
                Records::Stakeholders => {
                    let Some((mut new, mut patch)) = stakeholder(&mut fields) else { continue };
                    if files.with_lifecycle.contains(new.key.as_str()) {
                        // Its status comes from its lifecycle: created ACTIVE (or as given, when it did not end
                        // CHURNED or WON_BACK), left alone when it exists, and set after its last event.
                        if let (KindDetails::Customer(details), Some(DetailsPatch::Customer { status, .. })) =
                            (&mut new.details, &mut patch.details)
                        {
                            let column = fields.get("status").map_or(1, |(_, column)| column);
                            seen.statuses.insert(new.key.clone(), (details.status, file.clone(), row.line, column));
                            if matches!(details.status, CustomerStatus::Churned | CustomerStatus::WonBack) {
                                details.status = CustomerStatus::Active;
                            }
                            *status = None;
                        }
                    }
                    let column = fields.get("key").map_or(1, |(_, column)| column);
                    if let Some((first, _)) = seen.keys.get(new.key.as_str()) {
                        fields.report(
                            column,
                            "key",
                            format!("'{}' is also given at {first}; give each key once", new.key),
                        );
                        continue;
                    }
                    seen.keys.insert(new.key.as_str().to_owned(), (origin.clone(), new.kind()));
                    plan.stakeholders += 1;
                    plan.commands.push(Command::UpsertStakeholder { new, patch });
                    plan.rows_of.push(1);
                }
                Records::Relationships => {
                    let Some((from, to, upsert)) = relationship(&mut fields) else { continue };
                    let live = seen.live_ends(&mut fields, &from, &to);
                    let type_column = fields.get("type").map_or(1, |(_, column)| column);
                    let Some((from_kind, to_kind)) = live else { continue };
                    if let Err(error) = upsert.rel_type.check_ends(from_kind, to_kind) {
                        fields.report(type_column, "type", error.0);
                        continue;
                    }
                    if from == to {
                        fields.report(type_column, "to_key", "joins a stakeholder to itself; give two different keys");
                        continue;
                    }
                    let end = (from.clone(), to.clone(), upsert.rel_type);
                    if let Some(first) = seen.ends.insert(end, origin.clone()) {
                        fields.report(
                            1,
                            "from_key",
                            format!("this relationship is also given at {first}; give each once"),
                        );
                        continue;
                    }
                    plan.relationships += 1;
                    plan.commands.push(Command::UpsertRelationshipByKey { from, to, upsert });
                    plan.rows_of.push(1);
                }
                Records::Interactions => {
                    let Some(keyed) = interaction(&mut fields, now) else { continue };
                    let key = keyed.interaction.key.clone().expect("an imported interaction has a key");
                    let key_column = fields.get("key").map_or(1, |(_, column)| column);
                    if let Some((file, line)) = seen.interactions.get(&key) {
                        let first = format!("{}:{line}", files.files[*file].name);
                        fields.report(
                            key_column,
                            "key",
                            format!("'{key}' is also given at {first}; give each interaction its own key"),
                        );
                        continue;
                    }
                    seen.interactions.insert(key, (index, row.line));
                    let ends = (keyed.from.clone(), keyed.to.clone(), keyed.rel_type);
                    let named = (
                        keyed.from.as_str().to_owned(),
                        keyed.to.as_str().to_owned(),
                        keyed.rel_type.as_str().to_owned(),
                    );
                    if !seen.ends.contains_key(&ends) && !seen.named.contains(&named) {
                        // Not in a relationship file: its relationship must be in the database, between live ends.
                        let Some(_) = seen.live_ends(&mut fields, &keyed.from, &keyed.to) else { continue };
                        if !database.relationship(keyed.from.as_str(), keyed.to.as_str(), keyed.rel_type) {
                            let column = fields.get("type").map_or(1, |(_, column)| column);
                            fields.report(
                                column,
                                "type",
                                format!(
                                    "there is no {} relationship from '{}' to '{}' in the relationship files or the \
                                     database; add it to a relationship file, or fix the keys and type",
                                    keyed.rel_type.as_str(),
                                    keyed.from,
                                    keyed.to
                                ),
                            );
                            continue;
                        }
                    }
                    plan.interactions += 1;
                    pending.push(keyed);
                    plan.origins.push(origin);
                    if pending.len() == INTERACTIONS_PER_COMMAND {
                        plan.rows_of.push(pending.len());
                        plan.commands.push(Command::RecordInteractionsByKey(std::mem::take(&mut pending)));
                    }
                    continue;
                }
                Records::Programs => {
                    let Some(new) = program(&mut fields) else { continue };
                    let column = fields.get("key").map_or(1, |(_, column)| column);
                    if let Some(first) = seen.programs.get(&new.key) {
                        fields.report(
                            column,
                            "key",
                            format!("'{}' is also given at {first}; give each key once", new.key),
                        );
                        continue;
                    }
                    if let Some(stored) = database.program(new.key.as_str()) {
                        if (&stored.name, stored.kind, stored.markets) != (&new.name, new.kind, new.markets) {
                            fields.report(
                                column,
                                "key",
                                format!(
                                    "'{}' is a programme with another name, kind or markets in the database; a \
                                     programme does not change once created: give it as it is, or use another key",
                                    new.key
                                ),
                            );
                            continue;
                        }
                    }
                    seen.programs.insert(new.key.clone(), origin.clone());
                    plan.programs += 1;
                    plan.commands.push(Command::UpsertProgram(new));
                    plan.rows_of.push(1);
                }
                Records::Lifecycle => {
                    let Some((customer, event)) = lifecycle_event(&mut fields) else { continue };
                    let column = fields.get("customer_key").map_or(1, |(_, column)| column);
                    if !seen.customer(&mut fields, &customer, column, "only a customer has exits and win-backs") {
                        continue;
                    }
                    let event_column = fields.get("event").map_or(1, |(_, column)| column);
                    let previous = seen.lifecycles.get(&customer).map(|(number, last, _)| (*number, *last));
                    let number = match previous {
                        None if matches!(event, LifecycleEvent::WinBack { .. }) => {
                            fields.report(
                                event_column,
                                "event",
                                format!("'{customer}' comes back before it left; give its EXIT first"),
                            );
                            continue;
                        }
                        Some((_, last))
                            if matches!(
                                (last, event),
                                (LifecycleEvent::Exit { .. }, LifecycleEvent::Exit { .. })
                                    | (LifecycleEvent::WinBack { .. }, LifecycleEvent::WinBack { .. })
                            ) =>
                        {
                            fields.report(
                                event_column,
                                "event",
                                "follows an event of the same kind; a customer's exits and win-backs alternate, \
                                 starting with an EXIT",
                            );
                            continue;
                        }
                        Some((_, last)) if event.date() < last.date() => {
                            let column = fields.get("date").map_or(1, |(_, column)| column);
                            fields.report(
                                column,
                                "date",
                                format!(
                                    "'{}' is before the customer's previous event ({}); give its events in date order",
                                    event.date(),
                                    last.date()
                                ),
                            );
                            continue;
                        }
                        Some((number, _)) => number + 1,
                        None => 1,
                    };
                    seen.lifecycles.insert(customer.clone(), (number, event, plan.commands.len()));
                    plan.lifecycle += 1;
                    plan.commands.push(Command::LifecycleByKey { customer, number, event, then: None });
                    plan.rows_of.push(1);
                }
                Records::Memberships => {
                    let Some((customer, program, joined, left)) = membership(&mut fields) else { continue };
                    let column = fields.get("customer_key").map_or(1, |(_, column)| column);
                    if !seen.customer(&mut fields, &customer, column, "only customers join programmes") {
                        continue;
                    }
                    if !seen.programs.contains_key(&program) && database.program(program.as_str()).is_none() {
                        let column = fields.get("program_key").map_or(1, |(_, column)| column);
                        fields.report(
                            column,
                            "program_key",
                            format!("no programme has key '{program}'; add it to a programme file or fix the key"),
                        );
                        continue;
                    }
                    let identity = (customer.clone(), program.clone(), joined);
                    if let Some(first) = seen.memberships.insert(identity, origin.clone()) {
                        fields.report(
                            column,
                            "customer_key",
                            format!("this membership is also given at {first}; give each once"),
                        );
                        continue;
                    }
                    plan.memberships += 1;
                    plan.commands.push(Command::MembershipByKey { customer, program, joined, left });
                    plan.rows_of.push(1);
                }
            }
            plan.origins.push(origin);
        }
        if !pending.is_empty() {
            plan.rows_of.push(pending.len());
            plan.commands.push(Command::RecordInteractionsByKey(pending));
        }
        // In the order of the file, whatever found them.
        problems[first_of_file..].sort_by_key(|problem| (problem.line, problem.column));
    }
    // A customer whose lifecycle the files give ends in the status its stakeholder row gives.
    let mut statuses: Vec<_> = seen.statuses.iter().collect();
    statuses.sort_by_key(|(_, (_, file, line, _))| (file.as_str(), *line));
    for (customer, (status, file, line, column)) in statuses {
        let Some((_, last, command)) = seen.lifecycles.get(customer) else { continue };
        let then = match (last, status) {
            (LifecycleEvent::Exit { .. }, CustomerStatus::Churned)
            | (LifecycleEvent::WinBack { .. }, CustomerStatus::WonBack) => None,
            (LifecycleEvent::WinBack { .. }, CustomerStatus::Active | CustomerStatus::AtRisk) => Some(*status),
            (last, status) => {
                let ends = match last {
                    LifecycleEvent::Exit { .. } => "an EXIT: give CHURNED",
                    LifecycleEvent::WinBack { .. } => "a WIN_BACK: give WON_BACK, ACTIVE or AT_RISK",
                };
                problems.push(problem(
                    file,
                    *line,
                    *column,
                    format!(
                        "status: {} does not follow the lifecycle of '{customer}', which ends with {ends}",
                        status.as_str()
                    ),
                ));
                continue;
            }
        };
        if let Some(Command::LifecycleByKey { then: slot, .. }) = plan.commands.get_mut(*command) {
            *slot = then;
        }
    }
    if problems.is_empty() {
        Ok(plan)
    } else {
        Err(problems)
    }
}

/// How a run goes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Check everything and write nothing.
    pub dry_run: bool,
    /// Commit every this many rows (whole commands) instead of all at once.
    pub batch: Option<usize>,
}

/// What a run tells as it goes.
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    /// Reading the files.
    Reading {
        /// How many.
        files: usize,
    },
    /// Checking every row.
    Checking {
        /// How many files.
        files: usize,
    },
    /// Writing begins.
    Writing {
        /// How many rows.
        rows: usize,
        /// What and how, in words.
        what: &'a str,
    },
    /// A batch is committed.
    Wrote {
        /// Rows committed so far.
        done: usize,
        /// Of how many.
        rows: usize,
    },
}

/// What an upsert of one kind of record did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Upserted {
    /// New records.
    pub created: usize,
    /// Records that differed and were updated.
    pub changed: usize,
    /// Records found as given: nothing written, nothing logged.
    pub unchanged: usize,
}

/// What recording the interactions did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Recorded {
    /// Interactions recorded.
    pub recorded: usize,
    /// Interactions whose keys were recorded before: nothing written, nothing logged.
    pub unchanged: usize,
}

/// What a run did, or, for a dry run, would do.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum Report {
    /// A dry run: the rows checked.
    Checked {
        /// Stakeholder rows.
        stakeholders: usize,
        /// Relationship rows.
        relationships: usize,
        /// Interaction rows.
        interactions: usize,
        /// Programme rows.
        programs: usize,
        /// Membership rows.
        memberships: usize,
        /// Lifecycle rows.
        lifecycle: usize,
        /// Always false.
        written: bool,
    },
    /// What was written.
    Written {
        /// Stakeholders.
        stakeholders: Upserted,
        /// Relationships.
        relationships: Upserted,
        /// Interactions.
        interactions: Recorded,
        /// Programmes (a programme does not change: none is `changed`).
        programs: Upserted,
        /// Memberships (`changed`: a recorded one ended).
        memberships: Upserted,
        /// Exits and win-backs (`created`: recorded; `changed`: recorded before, and the status set after it).
        lifecycle: Upserted,
        /// Change-log entries appended.
        changes_logged: usize,
    },
}

/// Why a run wrote nothing, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The files have problems; nothing was written.
    #[error("{} problem(s) found; nothing was written", .0.len())]
    Problems(Vec<Problem>),
    /// The store refused a row (a rule only the database can check); the batches before it are committed.
    #[error("{origin}: {field}: {message}; {written}")]
    Refused {
        /// `file:line` of the row.
        origin: String,
        /// Its column.
        field: String,
        /// The store's reason.
        message: String,
        /// What was committed before.
        written: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a store holds of the keys and relationships an import's files refer to without giving them.
#[derive(Debug, Default)]
struct Stored {
    keys: HashMap<String, Known>,
    relationships: std::collections::HashSet<(String, String, RelationshipType)>,
    programs: HashMap<String, crate::domain::Program>,
}

impl Database for Stored {
    fn key(&self, key: &str) -> Option<Known> {
        self.keys.get(key).copied()
    }

    fn relationship(&self, from: &str, to: &str, rel_type: RelationshipType) -> bool {
        self.relationships.contains(&(from.to_owned(), to.to_owned(), rel_type))
    }

    fn program(&self, key: &str) -> Option<&crate::domain::Program> {
        self.programs.get(key)
    }
}

impl Stored {
    /// Looks up in `store` what `files` refer to without giving it.
    async fn of(store: &dyn GraphStore, files: &Files) -> Result<Self, StoreError> {
        let mut stored = Self::default();
        if files.of(Records::Programs).chain(files.of(Records::Memberships)).next().is_some() {
            let programs = store.programs().await?;
            stored.programs = programs.into_iter().map(|program| (program.key.as_str().to_owned(), program)).collect();
        }
        // Each key's owner, read once.
        let mut owners: HashMap<String, Option<StakeholderId>> = HashMap::new();
        for key in files.referenced_keys() {
            let found = store.stakeholder_by_key(&key).await?;
            if let Some(stakeholder) = &found {
                let known = if stakeholder.is_archived() { Known::Archived } else { Known::Live(stakeholder.kind()) };
                stored.keys.insert(key.clone(), known);
            }
            owners.insert(key, found.map(|stakeholder| stakeholder.id));
        }
        // The relationships interactions name that no relationship file gives: those of each stakeholder, read once
        // (their ends may be in a stakeholder file and the database both).
        let wanted = files.referenced_relationships();
        for key in wanted.iter().flat_map(|(from, to, _)| [from, to]) {
            if !owners.contains_key(key) {
                owners.insert(key.clone(), store.stakeholder_by_key(key).await?.map(|stakeholder| stakeholder.id));
            }
        }
        let keys_of: HashMap<StakeholderId, &String> =
            owners.iter().filter_map(|(key, id)| Some(((*id)?, key))).collect();
        let starts: std::collections::BTreeSet<StakeholderId> =
            wanted.iter().filter_map(|(from, ..)| owners[from]).collect();
        let starts: Vec<StakeholderId> = starts.into_iter().collect();
        for chunk in starts.chunks(1_000) {
            for relationship in store.relationships_of(chunk).await?.into_values().flatten() {
                if let (Some(from), Some(to)) = (keys_of.get(&relationship.from), keys_of.get(&relationship.to)) {
                    stored.relationships.insert(((*from).clone(), (*to).clone(), relationship.rel_type));
                }
            }
        }
        Ok(stored)
    }
}

/// Imports `inputs` into `store` through its one write path: reads and checks every file (and what they refer
/// to in the store), then writes everything in one batch, or every `options.batch` rows (whole commands), or, for
/// a dry run, nothing. `progress` hears each step.
pub async fn run(
    store: &dyn GraphStore,
    inputs: &Inputs,
    options: Options,
    mut progress: impl FnMut(Step<'_>),
) -> Result<Report, ImportError> {
    use crate::domain::Outcome;
    progress(Step::Reading { files: inputs.len() });
    let files = read(inputs);
    let stored = Stored::of(store, &files).await?;
    progress(Step::Checking { files: files.len() });
    let plan = plan(&files, &stored, Utc::now()).map_err(ImportError::Problems)?;
    drop(files);
    if options.dry_run {
        return Ok(Report::Checked {
            stakeholders: plan.stakeholders,
            relationships: plan.relationships,
            interactions: plan.interactions,
            programs: plan.programs,
            memberships: plan.memberships,
            lifecycle: plan.lifecycle,
            written: false,
        });
    }
    let counts = format!(
        "{} stakeholders, {} relationships, {} interactions, {} programmes, {} memberships and {} exits and win-backs",
        plan.stakeholders, plan.relationships, plan.interactions, plan.programs, plan.memberships, plan.lifecycle
    );
    let total = plan.origins.len();
    let per_batch = options.batch.unwrap_or(total).max(1);
    let what = match options.batch {
        Some(rows) => format!("writing {counts}, committing every {rows} rows"),
        None => format!("writing {counts} in one transaction"),
    };
    progress(Step::Writing { rows: total, what: &what });
    let (mut stakeholders, mut relationships, mut interactions) =
        (Upserted::default(), Upserted::default(), Recorded::default());
    let (mut programs, mut memberships, mut lifecycle) =
        (Upserted::default(), Upserted::default(), Upserted::default());
    let (origins, rows_of) = (plan.origins, plan.rows_of);
    let (mut done, mut logged) = (0, 0);
    let mut commands = plan.commands.into_iter().zip(rows_of).peekable();
    while commands.peek().is_some() {
        // Whole commands, until the batch has its rows.
        let (mut chunk, mut starts, mut rows) = (Vec::new(), Vec::new(), 0);
        while let Some((command, of)) = commands.next_if(|_| rows < per_batch) {
            chunk.push(command);
            starts.push(done + rows);
            rows += of;
        }
        let applied = match store.apply(chunk, Utc::now()).await {
            Ok(applied) => applied,
            Err(StoreError::Rejected { command, field, message, .. }) => {
                // A field of a command of many rows names its row first: `17.key`.
                let (row, field) = match field.split_once('.').map(|(row, rest)| (row.parse::<usize>(), rest)) {
                    Some((Ok(row), rest)) => (row, rest.to_owned()),
                    _ => (0, field),
                };
                let origin = origins.get(starts[command] + row).cloned().unwrap_or_else(|| "?".to_owned());
                let written = if done == 0 {
                    "nothing was written".to_owned()
                } else {
                    format!("the {done} rows before its batch were committed; fix it and run the same command again")
                };
                return Err(ImportError::Refused { origin, field: column_of(&field), message, written });
            }
            Err(error) => return Err(error.into()),
        };
        logged += applied.events.len();
        for outcome in applied.outcomes {
            let (counts, created, changed) = match outcome {
                Outcome::StakeholderUpserted { created, changed, .. } => (&mut stakeholders, created, changed),
                Outcome::Relationship { created, changed, .. } => (&mut relationships, created, changed),
                Outcome::ProgramUpserted { created, .. } => (&mut programs, created, false),
                Outcome::Membership { created, changed, .. } => (&mut memberships, created, changed),
                Outcome::Lifecycle { recorded, status_set, .. } => (&mut lifecycle, recorded, status_set),
                Outcome::Interactions { interactions: all, recorded } => {
                    interactions.recorded += recorded;
                    interactions.unchanged += all.len() - recorded;
                    continue;
                }
                _ => continue,
            };
            match (created, changed) {
                (true, _) => counts.created += 1,
                (false, true) => counts.changed += 1,
                (false, false) => counts.unchanged += 1,
            }
        }
        done += rows;
        progress(Step::Wrote { done, rows: total });
    }
    Ok(Report::Written {
        stakeholders,
        relationships,
        interactions,
        programs,
        memberships,
        lifecycle,
        changes_logged: logged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_lines_are_counted_across_crlf_blank_lines_quoted_newlines_and_ragged_rows() {
        let text = b"kind,key\r\nA,1\r\n\r\nB,\"two\nlines\"\r\nC,3,extra\r\nD,4\r\n";
        let (rows, problems) = csv_rows(text, "f.csv");
        let lines: Vec<usize> = rows.iter().map(|row| row.line).collect();
        assert_eq!(lines, [2, 4, 7]);
        assert_eq!(problems.len(), 1);
        assert_eq!((problems[0].line, problems[0].column), (6, 1), "{}", problems[0]);
        assert_eq!(rows[1].values[1].2, "two\nlines");
    }
}
