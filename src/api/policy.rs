//! Request policy: prices every request before any of it runs (nesting in its text, then fragments, fields, nodes,
//! weighted work and analyses in its document) and refuses what is over a limit, and gives every error a stable
//! `extensions.code`, including the errors async-graphql raises itself before any resolver runs (syntax, unknown
//! enum values, wrong types, depth and complexity limits).
//!
//! [`StakegraphSchema`](super::StakegraphSchema) applies it around async-graphql for every transport, rather than
//! an async-graphql extension: an extension puts a hook around every field's resolution, which cost a fifth of the
//! serving time of a dashboard page.

use super::cost::{mutation_fields, nesting, Cost};
use super::error::ApiError;
use super::paging::DEFAULT_PAGE_SIZE;
use super::ApiLimits;
use async_graphql::{Request, ServerError, ServerResult, Value};
use std::time::Duration;

/// The document of `request` and the operation of it that runs (the one named, or the only one), once parsed.
fn running(
    request: &mut Request,
) -> Option<(&async_graphql::parser::types::ExecutableDocument, &async_graphql::parser::types::OperationDefinition)> {
    use async_graphql::parser::types::DocumentOperations;
    let name = request.operation_name.clone();
    let document = request.parsed_query().ok()?;
    let operation = match (&document.operations, name.as_deref()) {
        (DocumentOperations::Single(operation), _) => Some(operation),
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name),
        (DocumentOperations::Multiple(operations), None) => operations.values().next(),
    }?;
    Some((document, &operation.node))
}

/// Whether the operation `request` runs is a subscription (those run until the client ends them, without a
/// deadline). A request that does not parse is not. Only for a request [`admit`] passed: it parses the text.
pub fn is_subscription(request: &mut Request) -> bool {
    use async_graphql::parser::types::OperationType;
    running(request).is_some_and(|(_, operation)| operation.ty == OperationType::Subscription)
}

/// Whether the operation `request` runs selects `__schema` or `__type` (at its root, or in fragments spread there).
/// Only for a request [`admit`] passed (parsed, no fragment cycle).
pub fn introspects(request: &mut Request) -> bool {
    use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
    fn selects(document: &ExecutableDocument, set: &SelectionSet, seen: &mut Vec<String>) -> bool {
        set.items.iter().any(|selection| match &selection.node {
            Selection::Field(field) => matches!(field.node.name.node.as_str(), "__schema" | "__type" | "_service"),
            Selection::InlineFragment(fragment) => selects(document, &fragment.node.selection_set.node, seen),
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.to_string();
                if seen.contains(&name) {
                    return false;
                }
                seen.push(name);
                document
                    .fragments
                    .get(&spread.node.fragment_name.node)
                    .is_some_and(|fragment| selects(document, &fragment.node.selection_set.node, seen))
            }
        })
    }
    running(request)
        .is_some_and(|(document, operation)| selects(document, &operation.selection_set.node, &mut Vec::new()))
}

/// `error` without the names async-graphql suggests ("… Did you mean \"stakeholder\"?").
pub fn without_suggestions(error: &mut ServerError) {
    if let Some(at) = error.message.find(" Did you mean") {
        error.message.truncate(at);
    }
}

/// The error of a request stopped at its deadline.
pub fn past_deadline(timeout: Duration) -> ServerError {
    ApiError::Refused {
        limit: "request_timeout_ms",
        message: format!(
            "the request ran past its deadline of {} ms (limits.request_timeout_ms) and was stopped; ask for less \
             (smaller pages, fewer fields) or narrow the analysis",
            timeout.as_millis()
        ),
        retry_after: None,
    }
    .into_server_error()
}

/// Prices `request` against `limits` and keeps its parsed document in it, or says which limit refuses it. The text
/// is scanned before it is parsed, so no request can make the parser recurse deeper than `limits.max_nesting`.
pub fn admit(request: &mut Request, limits: &ApiLimits) -> ServerResult<()> {
    let refuse = |limit: &'static str, message: String| ApiError::Refused { limit, message, retry_after: None };
    let deepest = nesting(&request.query);
    if deepest > limits.max_nesting {
        return Err(refuse(
            "max_nesting",
            format!(
                "the document nests brackets {deepest} levels deep, more than the limit of {} (limits.max_nesting); \
                 flatten nested lists and input objects, or send large inputs as variables",
                limits.max_nesting
            ),
        )
        .into_server_error());
    }
    // Parsed once: the transport may have parsed it already (after the same scan), and the parsed document stays
    // in the request for the executor.
    let variables = std::mem::take(&mut request.variables);
    let priced = request
        .parsed_query()
        .map(|document| (Cost::of(document, &variables, DEFAULT_PAGE_SIZE as u64), mutation_fields(document)));
    request.variables = variables;
    let (cost, mutations) = priced?;
    let cost = cost.map_err(|cycle| {
        ApiError::bad_input("", format!("fragment `{}` spreads itself; a fragment may not form a cycle", cycle.0))
            .into_server_error()
    })?;
    let checks = [
        (
            cost.depth > limits.max_nesting as u64,
            "max_nesting",
            format!(
                "the document nests {} levels deep with its fragments followed, more than the limit of {} \
                 (limits.max_nesting); select less deeply",
                cost.depth, limits.max_nesting
            ),
        ),
        (
            cost.fields > limits.max_complexity as u64,
            "max_complexity",
            format!(
                "the document selects {} fields with its fragments expanded (aliases and __typename included), more \
                 than the limit of {} (limits.max_complexity); select fewer fields or spread fragments fewer times",
                cost.fields, limits.max_complexity
            ),
        ),
        (
            cost.nodes > limits.max_nodes,
            "max_nodes",
            format!(
                "this query could return up to {} nodes, more than the limit of {} (limits.max_nodes); ask for \
                 smaller pages (`first`) in nested connections and page on with `after`",
                cost.nodes, limits.max_nodes
            ),
        ),
        (
            cost.analyses > limits.max_analyses as u64,
            "max_analyses",
            format!(
                "the document runs {} influence analyses, more than the limit of {} per request \
                 (limits.max_analyses); send them in separate requests",
                cost.analyses, limits.max_analyses
            ),
        ),
        (
            cost.forecasts > limits.max_forecasts,
            "max_forecasts",
            format!(
                "this query may compute up to {} forecasts (`fallsBelow` and `churnRisk`, times the pages around them), \
                 more than the limit of {} per request (limits.max_forecasts); ask for them on smaller pages",
                cost.forecasts, limits.max_forecasts
            ),
        ),
        (
            cost.work > limits.max_cost,
            "max_cost",
            format!(
                "this query costs {} units (each field resolution 1, `strength` 5, `fallsBelow` 50, an analysis \
                 1000, times the pages around it), more than the limit of {} (limits.max_cost); ask for smaller \
                 pages or fewer expensive fields",
                cost.work, limits.max_cost
            ),
        ),
    ];
    if let Some((_, limit, message)) = checks.into_iter().find(|(over, _, _)| *over) {
        return Err(refuse(limit, message).into_server_error());
    }
    if mutations > 1 {
        return Err(ApiError::bad_input(
            "",
            "a request may run one mutation field: each is one transaction, and a second one could fail after the \
             first committed; send each mutation in its own request (a batch of interactions is one field)",
        )
        .into_server_error());
    }
    Ok(())
}

/// The argument path an async-graphql message names (`Invalid value for argument "input.trust", …`).
fn argument_path(message: &str) -> Option<String> {
    let start = message.find("argument \"")? + "argument \"".len();
    let end = message[start..].find('"')?;
    Some(message[start..start + end].to_owned())
}

/// Gives an error raised by async-graphql itself a code (and the argument path it names).
pub fn add_code(error: &mut ServerError) {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_some() {
        return;
    }
    // async-graphql's own limits: name the setting and say how to stay within it.
    let limit = if error.message.contains("nested too deep") {
        Some(("max_depth", "select less deeply, and fetch deeper levels in a second request"))
    } else if error.message.contains("too complex") {
        Some(("max_complexity", "select fewer fields, or ask for smaller pages"))
    } else if error.message.contains("recursion depth") {
        Some(("max_nesting", "spread fragments less deeply"))
    } else {
        None
    };
    match limit {
        Some((setting, fix)) => {
            extensions.set("code", Value::from("LIMIT_EXCEEDED"));
            extensions.set("limit", Value::from(setting));
            error.message = format!("{} (limits.{setting}); {fix}", error.message.trim_end_matches('.'));
        }
        None => extensions.set("code", Value::from("BAD_USER_INPUT")),
    }
    if let Some(path) = argument_path(&error.message) {
        extensions.set("field", Value::from(path));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_argument_path() {
        let message = r#"Invalid value for argument "input.kind", enumeration type "X" does not contain the value "Y""#;
        assert_eq!(argument_path(message).as_deref(), Some("input.kind"));
        assert_eq!(argument_path("Unknown field"), None);
    }

    fn refusal(query: String) -> Option<String> {
        let mut request = Request::new(query);
        let error = admit(&mut request, &ApiLimits::default()).err()?;
        let limit = error.extensions.as_ref().and_then(|extensions| extensions.get("limit").cloned());
        Some(limit.map_or_else(|| error.message.clone(), |limit| limit.to_string()))
    }

    #[test]
    fn deep_values_are_refused_before_parsing_at_every_depth() {
        for depth in [65, 100, 1_000, 1_600, 5_000, 100_000] {
            let query = format!("{{ nodes(ids: {}\"x\"{}) {{ id }} }}", "[".repeat(depth), "]".repeat(depth));
            assert_eq!(refusal(query).as_deref(), Some("\"max_nesting\""), "depth {depth}");
        }
        let object =
            format!("{{ stakeholders(filter: {}) {{ totalCount }} }}", "{a: ".repeat(2_000) + &"}".repeat(2_000));
        assert_eq!(refusal(object).as_deref(), Some("\"max_nesting\""));
    }

    #[test]
    fn fragment_bombs_are_refused_without_expanding() {
        let query = crate::api::cost::tests::fragment_chain("{ ...F0 }", 25, 2);
        assert_eq!(refusal(query).as_deref(), Some("\"max_complexity\""));
    }

    #[test]
    fn aliased_forecasts_and_analyses_are_priced() {
        let forecasts =
            (0..50).map(|n| format!("f{n}: strength {{ fallsBelow(threshold: 0.{n}) }}")).collect::<Vec<_>>().join(" ");
        let query = format!(
            "{{ stakeholders(first: 100) {{ edges {{ node {{ relationships(first: 100) {{ edges {{ node {{ {forecasts} }} }} }} }} }} }} }}"
        );
        assert_eq!(refusal(query).as_deref(), Some("\"max_forecasts\""));
        let brokers = (0..600).map(|n| format!("b{n}: brokers(minStrength: 0.{n}) {{ exact }}")).collect::<String>();
        assert_eq!(refusal(format!("{{ {brokers} }}")).as_deref(), Some("\"max_analyses\""));
        assert_eq!(refusal("{ a: brokers { exact } b: keyInfluencers { asOf } }".into()), None);
    }
}
