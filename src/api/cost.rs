//! How many nodes a query may return at most, computed before it runs (as GitHub's GraphQL API does): every
//! connection returns up to `first` nodes for each node of the connection around it.
//!
//! async-graphql's complexity limit cannot see through interfaces (`Stakeholder.relationships` is selected on an
//! interface, whose fields carry no custom complexity), so breadth is bounded here instead.

use async_graphql::parser::types::{
    ExecutableDocument, FragmentDefinition, OperationType, Selection, SelectionSet, VariableDefinition,
};
use async_graphql::{Name, Positioned, Variables};
use async_graphql_value::{ConstValue, Value};
use std::collections::HashMap;

/// Fields that return a page (a connection or a ranked list), and so multiply what is selected below them.
const CONNECTIONS: &[&str] =
    &["stakeholders", "relationships", "interactions", "managedCustomers", "strongestRelationships"];
/// Fragments nested deeper than this are not followed (the validator refuses cycles later).
const MAX_FRAGMENT_DEPTH: usize = 32;

struct Walk<'a> {
    fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>,
    variables: &'a Variables,
    defaults: HashMap<&'a str, &'a ConstValue>,
    default_page: u64,
}

impl Walk<'_> {
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

    /// Nodes returned under `set` when it is resolved `times` times.
    fn nodes(&self, set: &SelectionSet, times: u64, depth: usize) -> u64 {
        if depth > MAX_FRAGMENT_DEPTH {
            return 0;
        }
        let mut total: u64 = 0;
        for selection in &set.items {
            let added = match &selection.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let argument = |name: &str| {
                        field.arguments.iter().find(|(argument, _)| argument.node == name).map(|(_, value)| &value.node)
                    };
                    let fan_out = if CONNECTIONS.contains(&field.name.node.as_str()) {
                        argument("first").and_then(|value| self.number(value)).unwrap_or(self.default_page)
                    } else if field.name.node == "nodes" {
                        argument("ids").and_then(|value| self.list_len(value)).unwrap_or(1)
                    } else {
                        1
                    };
                    let inner = times.saturating_mul(fan_out);
                    let own = if fan_out > 1 || CONNECTIONS.contains(&field.name.node.as_str()) { inner } else { 0 };
                    own.saturating_add(self.nodes(&field.selection_set.node, inner, depth))
                }
                Selection::InlineFragment(fragment) => self.nodes(&fragment.node.selection_set.node, times, depth + 1),
                Selection::FragmentSpread(spread) => self
                    .fragments
                    .get(&spread.node.fragment_name.node)
                    .map_or(0, |fragment| self.nodes(&fragment.node.selection_set.node, times, depth + 1)),
            };
            total = total.saturating_add(added);
        }
        total
    }
}

/// The most root fields any mutation of `document` selects (fragments followed).
pub fn mutation_fields(document: &ExecutableDocument) -> usize {
    fn count(set: &SelectionSet, fragments: &HashMap<Name, Positioned<FragmentDefinition>>, depth: usize) -> usize {
        if depth > MAX_FRAGMENT_DEPTH {
            return 0;
        }
        set.items
            .iter()
            .map(|selection| match &selection.node {
                Selection::Field(_) => 1,
                Selection::InlineFragment(fragment) => count(&fragment.node.selection_set.node, fragments, depth + 1),
                Selection::FragmentSpread(spread) => fragments
                    .get(&spread.node.fragment_name.node)
                    .map_or(0, |fragment| count(&fragment.node.selection_set.node, fragments, depth + 1)),
            })
            .sum()
    }
    document
        .operations
        .iter()
        .filter(|(_, operation)| operation.node.ty == OperationType::Mutation)
        .map(|(_, operation)| count(&operation.node.selection_set.node, &document.fragments, 0))
        .max()
        .unwrap_or(0)
}

/// The most nodes any operation of `document` may return.
pub fn max_nodes(document: &ExecutableDocument, variables: &Variables, default_page: u64) -> u64 {
    document
        .operations
        .iter()
        .map(|(_, operation)| {
            let definitions: &[Positioned<VariableDefinition>] = &operation.node.variable_definitions;
            let walk = Walk {
                fragments: &document.fragments,
                variables,
                defaults: definitions
                    .iter()
                    .filter_map(|definition| {
                        let default = definition.node.default_value.as_ref()?;
                        Some((definition.node.name.node.as_str(), &default.node))
                    })
                    .collect(),
                default_page,
            };
            walk.nodes(&operation.node.selection_set.node, 1, 0)
        })
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(query: &str, variables: serde_json::Value) -> u64 {
        let document = async_graphql::parser::parse_query(query).unwrap();
        max_nodes(&document, &Variables::from_json(variables), 20)
    }

    #[test]
    fn nested_connections_multiply() {
        let query =
            "{ stakeholders(first: 50) { edges { node { relationships(first: 5) { edges { node { id } } } } } } }";
        assert_eq!(nodes(query, serde_json::json!({})), 50 + 50 * 5);
    }

    #[test]
    fn variables_defaults_and_fragments_count() {
        let query = "query($n: Int = 10) { stakeholders(first: $n) { edges { node { ...R } } } }
                     fragment R on Stakeholder { relationships { edges { node { id } } } }";
        assert_eq!(nodes(query, serde_json::json!({})), 10 + 10 * 20);
        assert_eq!(nodes(query, serde_json::json!({ "n": 2 })), 2 + 2 * 20);
    }

    #[test]
    fn mutation_root_fields_are_counted() {
        let one = async_graphql::parser::parse_query("mutation { a: archiveStakeholder(id: 1) { id } }").unwrap();
        assert_eq!(mutation_fields(&one), 1);
        let two = async_graphql::parser::parse_query(
            "mutation { a: archiveStakeholder(id: 1) { id } ...B } fragment B on Mutation { b: archiveStakeholder(id: 2) { id } }",
        )
        .unwrap();
        assert_eq!(mutation_fields(&two), 2);
    }

    #[test]
    fn fragment_cycles_end() {
        let query = "{ stakeholders { edges { node { ...A } } } } fragment A on Stakeholder { ...A }";
        assert_eq!(nodes(query, serde_json::json!({})), 20);
    }
}
