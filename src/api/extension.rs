//! Request policy: refuses queries that could return too many nodes before they run, and gives every error a
//! stable `extensions.code`, including the errors async-graphql raises itself before any resolver runs (syntax,
//! unknown enum values, wrong types, depth and complexity limits).

use super::cost::{max_nodes, mutation_fields};
use super::paging::DEFAULT_PAGE_SIZE;
use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextRequest};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Response, ServerError, ServerResult, Value, Variables};
use std::sync::Arc;

/// The extension factory; `max_nodes` is the most nodes one query may return.
pub struct Policy {
    /// The most nodes one query may return.
    pub max_nodes: u64,
}

impl ExtensionFactory for Policy {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Policy { max_nodes: self.max_nodes })
    }
}

#[async_trait::async_trait]
impl Extension for Policy {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        if mutation_fields(&document) > 1 {
            return Err(coded(
                "a request may run one mutation field: each is one transaction, and a second one could fail after \
                 the first committed; send each mutation in its own request (a batch of interactions is one field)"
                    .into(),
                "BAD_USER_INPUT",
            ));
        }
        let nodes = max_nodes(&document, variables, DEFAULT_PAGE_SIZE as u64);
        if nodes > self.max_nodes {
            return Err(coded(
                format!(
                    "this query could return up to {nodes} nodes, more than the limit of {}; ask for smaller pages \
                     (`first`) in nested connections and page on with `after`",
                    self.max_nodes
                ),
                "LIMIT_EXCEEDED",
            ));
        }
        Ok(document)
    }

    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        for error in &mut response.errors {
            add_code(error);
        }
        response
    }
}

/// An error raised before execution, with its code.
fn coded(message: String, code: &str) -> ServerError {
    let mut error = ServerError::new(message, None);
    error.extensions.get_or_insert_with(Default::default).set("code", Value::from(code));
    error
}

/// The argument path an async-graphql message names (`Invalid value for argument "input.trust", …`).
fn argument_path(message: &str) -> Option<String> {
    let start = message.find("argument \"")? + "argument \"".len();
    let end = message[start..].find('"')?;
    Some(message[start..start + end].to_owned())
}

fn add_code(error: &mut ServerError) {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_some() {
        return;
    }
    let limit = error.message.contains("nested too deep") || error.message.contains("too complex");
    let code = if limit { "LIMIT_EXCEEDED" } else { "BAD_USER_INPUT" };
    extensions.set("code", Value::from(code));
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
}
