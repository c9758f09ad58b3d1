//! What a request may cost, computed from its text and document before anything of it runs, so that no request can
//! crash the process or hold a core for long (as GitHub's GraphQL API bounds nodes before it executes).
//!
//! Two passes, both linear in the size of the request:
//! - [`nesting`] scans the *text* for how deeply brackets nest, before the parser (which recurses once per level
//!   and would overflow its stack on a few thousand) ever sees it;
//! - [`Cost::of`] walks the parsed document *as if its fragments were expanded*, without expanding it: each
//!   fragment is summarised once, in dependency order, and every spread reuses the summary. So a document of 25
//!   fragments that each spread the next twice costs 25 summaries to price, not 2^25 visits, and is refused for
//!   what its expansion would cost.
//!
//! async-graphql's own depth and complexity validators expand fragments as they go, so they run only on documents
//! these bounds have admitted.

use async_graphql::parser::types::{
    ExecutableDocument, Field, FragmentDefinition, OperationType, Selection, SelectionSet, VariableDefinition,
};
use async_graphql::{Name, Positioned, Variables};
use async_graphql_value::{ConstValue, Value};
use std::collections::HashMap;

/// Fields that return a page (a connection or a ranked list), and so multiply what is selected below them.
const CONNECTIONS: &[&str] = &[
    "stakeholders",
    "relationships",
    "interactions",
    "managedCustomers",
    "strongestRelationships",
    "changes",
    "topInfluencers",
    "programs",
];

/// The influence analyses: each runs a graph algorithm over the whole projection. A document may hold only a few
/// (`limits.max_analyses`); their results multiply what is selected below them by their `first`.
const ANALYSES: &[(&str, u64)] = &[
    ("influencePaths", 3),
    ("influenceReach", 20),
    ("keyInfluencers", 10),
    ("brokers", 10),
    ("keyPersonRisk", 10),
    ("atRiskCustomers", 10),
    ("marketOverview", 6),
];

/// Fields that count over the whole graph like an analysis (and take an analysis' turn) but return one object:
/// a listing's `aggregate`, an employee's `portfolio` (every managed customer's churn risk and a key-person
/// report), and the query root's `relationships` (the graph's relationships, filtered and sorted
/// over every edge; a stakeholder's `relationships` is an ordinary connection), and `exitAnalysis` (over every
/// customer); a programme's `retention` (over every customer).
const AGGREGATES: &[&str] = &["aggregate", "portfolio", "retention"];
const ROOT_AGGREGATES: &[&str] = &["relationships", "exitAnalysis"];

/// The name of the query root type, which fragments spread at the root are declared on.
const QUERY_ROOT: &str = "Query";

/// What one resolution of a field costs, in units of a plain field; fields not listed cost 1.
/// `fallsBelow` (and `churnRisk`, which forecasts too) scans up to ten years of daily scores; `strength` evaluates nine components (and reads the history
/// for an earlier `asOf`); an analysis is priced far above any field, so its count is what bounds it.
const WEIGHTS: &[(&str, u64)] = &[
    ("fallsBelow", 50),
    ("churnRisk", 60),
    // Every programme's members on a day, counted over every customer once per version of the graph.
    ("memberCount", 100),
    ("strength", 5),
    ("strongestRelationships", 5),
    ("influencePaths", 1_000),
    ("influenceReach", 1_000),
    ("keyInfluencers", 1_000),
    ("brokers", 1_000),
    ("keyPersonRisk", 1_000),
    ("atRiskCustomers", 1_000),
    ("marketOverview", 1_000),
    // Admin lists read every webhook's record (at most `webhooks.max_webhooks`, 100 by default, each with its
    // latest 50 attempts): priced as the rows they may return.
    ("webhooks", 100),
    ("webhookDeliveries", 50),
];

/// Mutations whose payload lists one item per item of their input, with the name of that list: what is selected
/// under it is resolved once per input item (up to `limits.max_batch`), not once per page.
const BULK: &[(&str, &str)] = &[
    ("upsertStakeholders", "stakeholders"),
    ("upsertRelationships", "relationships"),
    ("recordInteractions", "interactions"),
];

/// The items of a bulk mutation whose input's size cannot be read from the document: the default
/// `limits.max_batch` (a larger input is refused by the mutation itself).
const BULK_ITEMS_UNKNOWN: u64 = 1_000;

/// What an analysis (or an aggregate) weighs.
const ANALYSIS_WEIGHT: u64 = 1_000;

/// How deeply `{`, `[` and `(` nest in a GraphQL text, outside strings and comments. Linear, and never recursive,
/// so it is safe on any input; a document may nest deeper than the parser could bear only in this count.
pub fn nesting(text: &str) -> usize {
    let bytes = text.as_bytes();
    let (mut depth, mut deepest, mut at) = (0usize, 0usize, 0usize);
    while at < bytes.len() {
        match bytes[at] {
            b'#' => {
                while at < bytes.len() && bytes[at] != b'\n' && bytes[at] != b'\r' {
                    at += 1;
                }
            }
            b'"' if bytes[at..].starts_with(b"\"\"\"") => {
                at += 3;
                while at < bytes.len() && !bytes[at..].starts_with(b"\"\"\"") {
                    at += if bytes[at..].starts_with(b"\\\"\"\"") { 4 } else { 1 };
                }
                at += 2;
            }
            b'"' => {
                at += 1;
                while at < bytes.len() && bytes[at] != b'"' && bytes[at] != b'\n' {
                    at += if bytes[at] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        at += 1;
    }
    deepest
}

/// What a selection set costs when it is resolved once; a set resolved `n` times costs `n` times as much (except
/// `fields` and `depth`, which describe the expanded document itself).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    /// Field selections in the document with its fragments expanded, aliases and `__typename` included (all its
    /// operations together; the other figures are the most any one operation costs).
    pub fields: u64,
    /// Levels of selection sets, fragment spreads and inline fragments, the deepest path (as async-graphql counts
    /// its recursion depth).
    pub depth: u64,
    /// The most nodes the request may return: each page returns up to `first` nodes for each node around it.
    pub nodes: u64,
    /// Field resolutions weighted by what each costs (see `WEIGHTS`), multiplied by the pages around them.
    pub work: u64,
    /// Influence analyses the request runs.
    pub analyses: u64,
    /// `fallsBelow` and `churnRisk` forecasts the request may compute, times the pages around them.
    pub forecasts: u64,
}

impl Cost {
    fn add(self, other: Cost) -> Cost {
        Cost {
            fields: self.fields.saturating_add(other.fields),
            depth: self.depth.max(other.depth),
            nodes: self.nodes.saturating_add(other.nodes),
            work: self.work.saturating_add(other.work),
            analyses: self.analyses.saturating_add(other.analyses),
            forecasts: self.forecasts.saturating_add(other.forecasts),
        }
    }

    /// What `document` costs with `variables` (`default_page` for a page without `first`): its expanded fields
    /// over all operations, and the most any one operation costs otherwise.
    /// Fails on a fragment that spreads itself, directly or not (the validator names it).
    pub fn of(document: &ExecutableDocument, variables: &Variables, default_page: u64) -> Result<Cost, FragmentCycle> {
        let order = dependency_order(&document.fragments)?;
        // Fragments are priced once for the whole document (a thousand operations must not price them a thousand
        // times), with the variables sent and, for those not sent, the largest default any operation declares (a
        // fragment may be spread by any of them).
        let mut largest: HashMap<&str, &ConstValue> = HashMap::new();
        for (_, operation) in document.operations.iter() {
            for (name, default) in declared_defaults(&operation.node.variable_definitions) {
                let entry = largest.entry(name).or_insert(default);
                if size_of(default) > size_of(entry) {
                    *entry = default;
                }
            }
        }
        let mut pricing =
            Pricing { variables, defaults: largest, default_page, fragments: HashMap::with_capacity(order.len()) };
        // The validators visit every fragment definition on its own (used or not) and follow its spreads, so each
        // fragment's own expansion counts, and so does its depth.
        let mut total = Cost::default();
        for name in &order {
            let fragment = &document.fragments[*name];
            let root = fragment.node.type_condition.node.on.node.as_str() == QUERY_ROOT;
            let cost = pricing.set(&fragment.node.selection_set.node, root);
            total.fields = total.fields.saturating_add(cost.fields);
            total.depth = total.depth.max(cost.depth);
            pricing.fragments.insert(name, cost);
        }
        for (_, operation) in document.operations.iter() {
            // An operation's own variables take its own defaults.
            let fragments = std::mem::take(&mut pricing.fragments);
            let own = Pricing {
                variables,
                defaults: declared_defaults(&operation.node.variable_definitions).collect(),
                default_page,
                fragments,
            };
            let root = operation.node.ty == OperationType::Query;
            let cost = own.set(&operation.node.selection_set.node, root);
            pricing.fragments = own.fragments;
            total = Cost {
                // The validators walk every operation with its fragments expanded, so the fields add up.
                fields: total.fields.saturating_add(cost.fields),
                depth: total.depth.max(cost.depth),
                nodes: total.nodes.max(cost.nodes),
                work: total.work.max(cost.work),
                analyses: total.analyses.max(cost.analyses),
                forecasts: total.forecasts.max(cost.forecasts),
            };
        }
        Ok(total)
    }
}

/// The defaults an operation declares for its variables.
fn declared_defaults(definitions: &[Positioned<VariableDefinition>]) -> impl Iterator<Item = (&str, &ConstValue)> + '_ {
    definitions.iter().filter_map(|definition| {
        let default = definition.node.default_value.as_ref()?;
        Some((definition.node.name.node.as_str(), &default.node))
    })
}

/// How much a default asks for, to keep the largest: a number's value, a list's length.
fn size_of(value: &ConstValue) -> u64 {
    match value {
        ConstValue::Number(number) => number.as_u64().unwrap_or(0),
        ConstValue::List(items) => items.len() as u64,
        _ => 0,
    }
}

/// A fragment that spreads itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentCycle(pub String);

/// The fragments in an order where each comes after every fragment it spreads (an explicit stack: a chain of ten
/// thousand fragments must not recurse ten thousand times).
fn dependency_order(fragments: &HashMap<Name, Positioned<FragmentDefinition>>) -> Result<Vec<&Name>, FragmentCycle> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    let spreads: HashMap<&Name, Vec<&Name>> = fragments
        .iter()
        .map(|(name, fragment)| {
            let mut found = Vec::new();
            spreads_in(&fragment.node.selection_set.node, &mut found);
            (name, found.into_iter().filter(|spread| fragments.contains_key(*spread)).collect())
        })
        .collect();
    let mut marks: HashMap<&Name, Mark> = HashMap::with_capacity(fragments.len());
    let mut order = Vec::with_capacity(fragments.len());
    let mut names: Vec<&Name> = fragments.keys().collect();
    names.sort();
    for root in names {
        if marks.contains_key(root) {
            continue;
        }
        marks.insert(root, Mark::Open);
        let mut stack = vec![(root, 0usize)];
        while let Some((name, next)) = stack.last_mut() {
            let name = *name;
            match spreads[name].get(*next) {
                Some(&spread) => {
                    *next += 1;
                    match marks.get(spread) {
                        Some(Mark::Open) => return Err(FragmentCycle(spread.to_string())),
                        Some(Mark::Done) => {}
                        None => {
                            marks.insert(spread, Mark::Open);
                            stack.push((spread, 0));
                        }
                    }
                }
                None => {
                    marks.insert(name, Mark::Done);
                    order.push(name);
                    stack.pop();
                }
            }
        }
    }
    Ok(order)
}

/// The fragment names spread anywhere in `set` (its nesting is bounded by [`nesting`]).
fn spreads_in<'a>(set: &'a SelectionSet, found: &mut Vec<&'a Name>) {
    for selection in &set.items {
        match &selection.node {
            Selection::Field(field) => spreads_in(&field.node.selection_set.node, found),
            Selection::InlineFragment(fragment) => spreads_in(&fragment.node.selection_set.node, found),
            Selection::FragmentSpread(spread) => found.push(&spread.node.fragment_name.node),
        }
    }
}

struct Pricing<'a> {
    variables: &'a Variables,
    defaults: HashMap<&'a str, &'a ConstValue>,
    default_page: u64,
    /// The cost of each fragment already priced.
    fragments: HashMap<&'a Name, Cost>,
}

impl Pricing<'_> {
    /// The value of a variable: as sent, or its declared default.
    fn variable(&self, name: &Name) -> Option<&ConstValue> {
        self.variables.get(name).or_else(|| self.defaults.get(name.as_str()).copied())
    }

    fn number(&self, value: &Value) -> Option<u64> {
        match value {
            Value::Number(number) => number.as_u64(),
            Value::Variable(name) => match self.variable(name)? {
                ConstValue::Number(number) => number.as_u64(),
                _ => None,
            },
            _ => None,
        }
    }

    fn list_len(&self, value: &Value) -> Option<u64> {
        match value {
            Value::List(items) => Some(items.len() as u64),
            Value::Variable(name) => match self.variable(name)? {
                ConstValue::List(items) => Some(items.len() as u64),
                _ => None,
            },
            _ => None,
        }
    }

    /// How many times what is selected below `field` is resolved for each resolution of `field`, and whether
    /// `field` returns a page.
    fn fan_out(&self, field: &Field) -> (u64, bool) {
        let name = field.name.node.as_str();
        let argument = |wanted: &str| {
            field.arguments.iter().find(|(argument, _)| argument.node == wanted).map(|(_, value)| &value.node)
        };
        let first = || argument("first").and_then(|value| self.number(value));
        if CONNECTIONS.contains(&name) {
            // A page runs forward (`first`) or backward (`last`); both together are refused when it runs, and
            // priced here at the larger.
            let last = argument("last").and_then(|value| self.number(value));
            (first().max(last).unwrap_or(self.default_page), true)
        } else if let Some((_, default)) = ANALYSES.iter().find(|(analysis, _)| *analysis == name) {
            (first().unwrap_or(*default), true)
        } else if name == "nodes" {
            (argument("ids").and_then(|value| self.list_len(value)).unwrap_or(1), true)
        } else if name == "_entities" {
            (argument("representations").and_then(|value| self.list_len(value)).unwrap_or(1), true)
        } else {
            (1, false)
        }
    }

    /// What `set` costs; `root` when it is the query root's selection (directly, or through inline fragments and
    /// fragments on the root type).
    fn set(&self, set: &SelectionSet, root: bool) -> Cost {
        set.items.iter().fold(Cost::default(), |total, selection| total.add(self.selection(&selection.node, root)))
    }

    fn selection(&self, selection: &Selection, root: bool) -> Cost {
        match selection {
            Selection::Field(field) => self.field(&field.node, root),
            Selection::InlineFragment(fragment) => {
                let inner = self.set(&fragment.node.selection_set.node, root);
                Cost { depth: inner.depth.saturating_add(1), ..inner }
            }
            Selection::FragmentSpread(spread) => {
                // Fragments are priced before anything that spreads them; an unknown one is the validator's.
                let inner = self.fragments.get(&spread.node.fragment_name.node).copied().unwrap_or_default();
                Cost { depth: inner.depth.saturating_add(1), ..inner }
            }
        }
    }

    /// How many items the lists of `field`'s `input` object hold together (its variable's value, or its own
    /// lists); `None` when that cannot be read.
    fn input_items(&self, field: &Field) -> Option<u64> {
        let (_, input) = field.arguments.iter().find(|(argument, _)| argument.node == "input")?;
        let lists: Vec<u64> = match &input.node {
            Value::Object(members) => members.values().filter_map(|value| self.list_len(value)).collect(),
            Value::Variable(name) => match self.variable(name)? {
                ConstValue::Object(members) => members
                    .values()
                    .filter_map(|value| match value {
                        ConstValue::List(items) => Some(items.len() as u64),
                        _ => None,
                    })
                    .collect(),
                _ => return None,
            },
            _ => return None,
        };
        (!lists.is_empty()).then(|| lists.iter().fold(0u64, |total, items| total.saturating_add(*items)))
    }

    /// A bulk mutation: its payload's `list` priced once per input item, the rest once.
    fn bulk(&self, field: &Field, list: &str) -> Cost {
        let items = self.input_items(field).unwrap_or(BULK_ITEMS_UNKNOWN);
        let mut inner = Cost::default();
        for selection in &field.selection_set.node.items {
            let cost = match &selection.node {
                Selection::Field(child) if child.node.name.node == list => {
                    let each = self.set(&child.node.selection_set.node, false);
                    let times = |value: u64| items.saturating_mul(value);
                    Cost {
                        fields: each.fields.saturating_add(1),
                        depth: each.depth.saturating_add(1),
                        nodes: items.saturating_add(times(each.nodes)),
                        work: times(each.work).saturating_add(1),
                        analyses: times(each.analyses),
                        forecasts: times(each.forecasts),
                    }
                }
                other => self.selection(other, false),
            };
            inner = inner.add(cost);
        }
        Cost {
            fields: inner.fields.saturating_add(1),
            depth: inner.depth.saturating_add(1),
            work: inner.work.saturating_add(1),
            ..inner
        }
    }

    fn field(&self, field: &Field, root: bool) -> Cost {
        let name = field.name.node.as_str();
        if let Some((_, list)) = BULK.iter().find(|(mutation, _)| *mutation == name) {
            return self.bulk(field, list);
        }
        let (fan_out, page) = self.fan_out(field);
        let (repeated, once) = if CONNECTIONS.contains(&name) {
            self.connection(&field.selection_set.node)
        } else {
            (self.set(&field.selection_set.node, false), Cost::default())
        };
        let aggregate = AGGREGATES.contains(&name) || (root && ROOT_AGGREGATES.contains(&name));
        let weight = match WEIGHTS.iter().find(|(weighted, _)| *weighted == name) {
            Some((_, weight)) => *weight,
            None if aggregate => ANALYSIS_WEIGHT,
            None => 1,
        };
        let times = |each: u64, single: u64| fan_out.saturating_mul(each).saturating_add(single);
        Cost {
            fields: repeated.fields.saturating_add(once.fields).saturating_add(1),
            depth: repeated.depth.max(once.depth).saturating_add(1),
            nodes: (if page { fan_out } else { 0 }).saturating_add(times(repeated.nodes, once.nodes)),
            work: weight.saturating_add(times(repeated.work, once.work)),
            analyses: u64::from(aggregate || ANALYSES.iter().any(|(analysis, _)| *analysis == name))
                .saturating_add(times(repeated.analyses, once.analyses)),
            forecasts: u64::from(name == "fallsBelow" || name == "churnRisk")
                .saturating_add(times(repeated.forecasts, once.forecasts)),
        }
    }

    /// A connection's selection: what is resolved for each item (`edges`, `nodes`, and fragments, which may hold
    /// them) and what once for the page (`totalCount`, `pageInfo`, `aggregate`, …).
    fn connection(&self, set: &SelectionSet) -> (Cost, Cost) {
        let (mut repeated, mut once) = (Cost::default(), Cost::default());
        for selection in &set.items {
            let per_item = match &selection.node {
                Selection::Field(field) => matches!(field.node.name.node.as_str(), "edges" | "nodes"),
                Selection::InlineFragment(_) | Selection::FragmentSpread(_) => true,
            };
            let cost = self.selection(&selection.node, false);
            if per_item {
                repeated = repeated.add(cost);
            } else {
                once = once.add(cost);
            }
        }
        (repeated, once)
    }
}

/// The most root fields any mutation of `document` selects (fragments followed, each once per spread).
pub fn mutation_fields(document: &ExecutableDocument) -> usize {
    fn count(set: &SelectionSet, fragments: &HashMap<Name, Positioned<FragmentDefinition>>, depth: usize) -> usize {
        // A mutation is one root field; anything nested deeper than a few spreads is refused for its count anyway.
        if depth > 4 {
            return 2;
        }
        set.items
            .iter()
            .map(|selection| match &selection.node {
                Selection::Field(field) => usize::from(field.node.name.node != "__typename"),
                Selection::InlineFragment(fragment) => count(&fragment.node.selection_set.node, fragments, depth + 1),
                Selection::FragmentSpread(spread) => fragments
                    .get(&spread.node.fragment_name.node)
                    .map_or(0, |fragment| count(&fragment.node.selection_set.node, fragments, depth + 1)),
            })
            .fold(0usize, usize::saturating_add)
    }
    document
        .operations
        .iter()
        .filter(|(_, operation)| operation.node.ty == OperationType::Mutation)
        .map(|(_, operation)| count(&operation.node.selection_set.node, &document.fragments, 0))
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A document of `operation` and the fragments `F0` … `F{levels}` on `Query`, each `F{i}` spreading `F{i+1}`
    /// `spreads` times and the last selecting `__typename`: a chain (1 spread) or a bomb (2) of fragments.
    pub(crate) fn fragment_chain(operation: &str, levels: usize, spreads: usize) -> String {
        let mut query = format!("{operation}\n");
        for level in 0..levels {
            let spread = format!(" ...F{}", level + 1);
            query.push_str(&format!("fragment F{level} on Query {{{} }}\n", spread.repeat(spreads)));
        }
        query.push_str(&format!("fragment F{levels} on Query {{ __typename }}\n"));
        query
    }

    fn cost(query: &str, variables: serde_json::Value) -> Cost {
        let document = async_graphql::parser::parse_query(query).unwrap();
        Cost::of(&document, &Variables::from_json(variables), 20).unwrap()
    }

    #[test]
    fn a_bulk_mutation_s_payload_list_is_priced_per_input_item() {
        let query = "mutation($input: UpsertStakeholdersInput!) { upsertStakeholders(input: $input) { created \
                     stakeholders { id relationships(first: 100) { edges { node { strength { fallsBelow(threshold: 0.3) } } } } } } }";
        let item = serde_json::json!({ "key": "K", "name": "N" });
        let three = serde_json::json!({ "input": { "customers": [item, item], "suppliers": [item] } });
        let priced = cost(query, three);
        assert_eq!(priced.forecasts, 3 * 100, "each of the 3 items' 100 relationships");
        assert_eq!(priced.nodes, 3 + 3 * 100);
        // Not readable from the document: priced at the default batch limit.
        let unknown = "mutation { upsertStakeholders(input: { customers: $list }) { stakeholders { \
                       relationships(first: 100) { edges { node { strength { fallsBelow(threshold: 0.3) } } } } } } }";
        assert_eq!(cost(unknown, serde_json::json!({})).forecasts, 1_000 * 100);
        let interactions = cost(
            "mutation($input: RecordInteractionsInput!) { recordInteractions(input: $input) { count interactions { id } } }",
            serde_json::json!({ "input": { "interactions": [{}, {}, {}, {}] } }),
        );
        assert_eq!((interactions.nodes, interactions.work), (4, 1 + 1 + (4 + 1)));
    }

    #[test]
    fn nested_connections_multiply() {
        let query =
            "{ stakeholders(first: 50) { edges { node { relationships(first: 5) { edges { node { id } } } } } } }";
        let cost = cost(query, serde_json::json!({}));
        assert_eq!(cost.nodes, 50 + 50 * 5);
        assert_eq!(cost.fields, 7);
        assert_eq!(cost.depth, 7);
        // stakeholders, edges, node, relationships ×50, edges, node, id ×250.
        assert_eq!(cost.work, 1 + 50 * (1 + 1 + 1 + 5 * (1 + 1 + 1)));
    }

    #[test]
    fn backward_pages_and_entities_multiply_as_forward_pages_and_nodes_do() {
        let nodes = |query: &str, variables| cost(query, variables).nodes;
        let forward =
            "{ stakeholders(first: 50) { edges { node { relationships(first: 5) { edges { node { id } } } } } } }";
        let backward =
            "{ stakeholders(last: 50) { edges { node { relationships(last: 5) { edges { node { id } } } } } } }";
        assert_eq!(nodes(backward, serde_json::json!({})), nodes(forward, serde_json::json!({})));
        let both = "{ stakeholders(first: 3, last: 40) { edges { node { id } } } }";
        assert_eq!(nodes(both, serde_json::json!({})), 40, "refused when it runs; priced at the larger");
        let entities = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Customer { \
                        relationships(first: 5) { edges { node { id } } } } } }";
        let three = serde_json::json!({ "r": [{}, {}, {}] });
        assert_eq!(nodes(entities, three), 3 + 3 * 5, "each representation's page");
    }

    #[test]
    fn variables_defaults_and_fragments_count() {
        let query = "query($n: Int = 10) { stakeholders(first: $n) { edges { node { ...R } } } }
                     fragment R on Stakeholder { relationships { edges { node { id } } } }";
        assert_eq!(cost(query, serde_json::json!({})).nodes, 10 + 10 * 20);
        assert_eq!(cost(query, serde_json::json!({ "n": 2 })).nodes, 2 + 2 * 20);
    }

    #[test]
    fn aliases_typename_and_weights_count() {
        let query = "{ a: __typename b: __typename c: __typename relationship(id: 1) { x: strength { fallsBelow(threshold: 0.5) } y: strength { score } } }";
        let cost = cost(query, serde_json::json!({}));
        assert_eq!(cost.fields, 3 + 1 + 2 + 2);
        assert_eq!(cost.work, 3 + 1 + (5 + 50) + (5 + 1));
        assert_eq!(cost.forecasts, 1);
    }

    #[test]
    fn analyses_are_counted_and_multiply_their_results() {
        let query = "{ a: brokers { stakeholder { id } } b: keyInfluencers(first: 5) { stakeholder { id } } }";
        let cost = cost(query, serde_json::json!({}));
        assert_eq!(cost.analyses, 2);
        assert_eq!(cost.nodes, 10 + 5);
    }

    #[test]
    fn aggregates_are_analyses_counted_once_per_page_and_only_the_root_relationships_is_one() {
        // `aggregate` sits beside the page's edges: once per page, not once per item.
        let listing = "{ stakeholders(first: 50) { totalCount aggregate { count } edges { node { id } } } }";
        let priced = cost(listing, serde_json::json!({}));
        assert_eq!(priced.analyses, 1);
        assert_eq!(priced.nodes, 50);
        // The root `relationships` counts over the graph; a stakeholder's `relationships` is a plain connection.
        let root = "{ relationships(first: 10) { aggregate { count } edges { node { id } } } }";
        assert_eq!(cost(root, serde_json::json!({})).analyses, 2);
        let nested = "{ stakeholders(first: 50) { edges { node { relationships(first: 10) { totalCount } } } } }";
        assert_eq!(cost(nested, serde_json::json!({})).analyses, 0);
        let spread = "{ ...R } fragment R on Query { relationships { totalCount } }";
        assert_eq!(cost(spread, serde_json::json!({})).analyses, 1);
        let inline = "{ ... on Query { relationships { totalCount } } }";
        assert_eq!(cost(inline, serde_json::json!({})).analyses, 1);
        // An aggregate under each item of a page is one per item.
        let per_item = "{ stakeholders(first: 7) { edges { node { ... on Employee { managedCustomers { aggregate { count } } } } } } }";
        assert_eq!(cost(per_item, serde_json::json!({})).analyses, 7);
    }

    #[test]
    fn programmes_are_pages_their_member_counts_weigh_and_each_retention_is_an_analysis() {
        let listing = "{ programs(first: 10) { totalCount nodes { key memberCount } } }";
        let priced = cost(listing, serde_json::json!({}));
        // Ten programmes (each also counted by `nodes`, as every connection's are).
        assert_eq!((priced.nodes, priced.analyses), (10 + 10, 0));
        // programs, totalCount, nodes ×10 with key and memberCount (100) each.
        assert_eq!(priced.work, 1 + 1 + 10 * (1 + 1 + 100));
        let retention =
            "{ programs(first: 4) { nodes { retention(from: \"2025-01-01\", to: \"2026-01-01\") { difference } } } }";
        assert_eq!(cost(retention, serde_json::json!({})).analyses, 4);
        // A customer's memberships are a page too (20 by default): 20 for each of the 5 customers.
        let memberships = "{ stakeholders(first: 5) { nodes { ... on Customer { programs { nodes { joined } } } } } }";
        assert_eq!(cost(memberships, serde_json::json!({})).nodes, 5 + 5 * (1 + 20 + 20));
    }

    #[test]
    fn fragment_fan_out_is_priced_as_expanded_without_expanding() {
        // Each fragment spreads the next twice: 2^40 leaf fields once expanded.
        let query = fragment_chain("{ ...F0 }", 40, 2);
        let cost = cost(&query, serde_json::json!({}));
        // The operation's expansion, and each fragment's own: 2^40 + (2^40 + 2^39 + … + 1).
        assert_eq!(cost.fields, (1 << 40) + (1 << 41) - 1);
        assert_eq!(cost.depth, 42);
    }

    #[test]
    fn a_long_chain_of_fragments_does_not_recurse() {
        let query = fragment_chain("{ ...F0 }", 100_000, 1);
        let document = async_graphql::parser::parse_query(&query).unwrap();
        let cost = Cost::of(&document, &Variables::default(), 20).unwrap();
        assert_eq!(cost.depth, 100_002);
    }

    #[test]
    fn every_operation_counts_towards_the_fields_validators_walk() {
        let mut query = String::from("fragment F on Query { a: __typename b: __typename }\n");
        for operation in 0..1_000 {
            query.push_str(&format!("query Q{operation} {{ ...F }}\n"));
        }
        let cost = cost(&query, serde_json::json!({}));
        // The fragment's own two fields, then two for each operation.
        assert_eq!(cost.fields, 2 + 2_000);
        assert_eq!(cost.work, 2);
    }

    #[test]
    fn unused_fragments_count_for_what_the_validators_walk() {
        let query = fragment_chain("{ __typename }", 30_000, 1);
        let cost = cost(&query, serde_json::json!({}));
        assert_eq!(cost.depth, 30_001, "the longest chain of spreads, from the first fragment");
    }

    #[test]
    fn each_operation_takes_its_own_defaults_and_fragments_the_largest() {
        let query = "query A($n: Int = 1) { stakeholders(first: $n) { totalCount } }
                     query B($n: Int = 100) { stakeholders(first: $n) { edges { node { ...R } } } }
                     fragment R on Stakeholder { relationships(first: $n) { totalCount } }";
        for _ in 0..20 {
            assert_eq!(cost(query, serde_json::json!({})).nodes, 100 + 100 * 100);
        }
    }

    #[test]
    fn fragment_cycles_are_found() {
        let query = "{ stakeholders { edges { node { ...A } } } } fragment A on Stakeholder { ...B } fragment B on Stakeholder { ...A }";
        let document = async_graphql::parser::parse_query(query).unwrap();
        assert!(Cost::of(&document, &Variables::default(), 20).is_err());
    }

    #[test]
    fn nesting_skips_strings_and_comments() {
        assert_eq!(nesting("{ a(b: [[1]]) }"), 4);
        assert_eq!(nesting(r#"{ a(b: "[[[[\"[[[") }"#), 2);
        assert_eq!(nesting("{ a # [[[[[[\n }"), 1);
        assert_eq!(nesting("{ a(b: \"\"\" [[[[ \\\"\"\" [[[ \"\"\") }"), 2);
        assert_eq!(nesting(&"[".repeat(1_000_000)), 1_000_000);
        assert_eq!(nesting("]]]] {"), 1);
    }

    #[test]
    fn mutation_root_fields_are_counted() {
        let one = async_graphql::parser::parse_query("mutation { a: archiveStakeholder(id: 1) { id } }").unwrap();
        assert_eq!(mutation_fields(&one), 1);
        let typename =
            async_graphql::parser::parse_query("mutation { __typename a: archiveStakeholder(id: 1) { id } }").unwrap();
        assert_eq!(mutation_fields(&typename), 1);
        let two = async_graphql::parser::parse_query(
            "mutation { a: archiveStakeholder(id: 1) { id } ...B } fragment B on Mutation { b: archiveStakeholder(id: 2) { id } }",
        )
        .unwrap();
        assert_eq!(mutation_fields(&two), 2);
    }
}
