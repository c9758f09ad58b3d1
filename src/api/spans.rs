//! The spans of one GraphQL operation, for traces ([`crate::traces`]): the operation, and one span per resolver
//! class (`Customer.relationships`) rather than per resolution, so that a page of 50 customers with 10
//! relationships each is a handful of spans, not two thousand. A class's span opens at its first resolution, is
//! entered by every resolution after it (its busy time is theirs), carries how many ran, and closes when the
//! operation is done. Nothing is made when no exporter is configured.

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute, NextResolve, ResolveInfo};
use async_graphql::{Response, ServerResult, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tracing::Instrument as _;

/// Makes the spans of each query and mutation (subscriptions have none: their resolutions are spread over hours).
pub struct OperationSpans;

impl ExtensionFactory for OperationSpans {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Spans { traced: crate::traces::exporting(), classes: Mutex::default() })
    }
}

struct Spans {
    /// Whether spans are recorded at all (an exporter is configured).
    traced: bool,
    /// The classes resolved so far, while an operation executes: `None` outside one.
    classes: Mutex<Option<HashMap<String, Class>>>,
}

struct Class {
    span: tracing::Span,
    resolutions: u64,
}

#[async_trait::async_trait]
impl Extension for Spans {
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        if !self.traced {
            return next.run(ctx, operation_name).await;
        }
        let span = tracing::debug_span!(
            target: crate::traces::TARGET,
            "operation",
            otel.name = "graphql",
            graphql.operation.name = operation_name.unwrap_or(""),
        );
        *self.classes.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(HashMap::new());
        let response = next.run(ctx, operation_name).instrument(span).await;
        self.close_classes();
        response
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        // List items (`[Customer!].…`) are their list field's resolutions, already in its class.
        let item = info.parent_type.starts_with('[');
        let span = if self.traced && !info.is_for_introspection && !item { self.class_span(&info) } else { None };
        match span {
            Some(span) => next.run(ctx, info).instrument(span).await,
            None => next.run(ctx, info).await,
        }
    }
}

/// An operation dropped part-way (past its deadline) still closes its classes with their counts.
impl Drop for Spans {
    fn drop(&mut self) {
        self.close_classes();
    }
}

impl Spans {
    /// Closes the operation's class spans, each with how many resolutions ran in it.
    fn close_classes(&self) {
        let classes = self.classes.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        for class in classes.into_iter().flat_map(HashMap::into_values) {
            class.span.record("graphql.resolutions", class.resolutions);
        }
    }

    /// The span of `info`'s class, opened (under the current span) at its first resolution.
    fn class_span(&self, info: &ResolveInfo<'_>) -> Option<tracing::Span> {
        let mut classes = self.classes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let classes = classes.as_mut()?;
        let name = format!("{}.{}", info.parent_type, info.name);
        let class = classes.entry(name).or_insert_with_key(|name| Class {
            span: tracing::debug_span!(
                target: crate::traces::TARGET,
                "resolve",
                otel.name = name.as_str(),
                graphql.field.parent_type = info.parent_type,
                graphql.field.name = info.name,
                graphql.resolutions = tracing::field::Empty,
            ),
            resolutions: 0,
        });
        class.resolutions += 1;
        Some(class.span.clone())
    }
}
