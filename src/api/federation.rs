//! Apollo Federation v2: Stakegraph as a subgraph. The `Stakeholder` interface (an entity interface, so that
//! another subgraph may add fields to every stakeholder with `@interfaceObject`), each of its types and
//! `Relationship` are entities keyed by their global `id`; `_service { sdl }` gives the subgraph's SDL and
//! `_entities` resolves representations.
//!
//! The two root fields are ours, not async-graphql's entity resolvers: those put an entity interface into the
//! `_Entity` union, which GraphQL forbids (a union holds object types only), so that the schema's introspection and
//! SDL would be invalid. Ours keep `_Entity` to object types and answer a `Stakeholder` representation with the
//! stakeholder's own type, as the federation specification asks of an entity interface.
//!
//! Each entity is read as `node(id)` reads it, through the same loaders and the same privacy policy: a private
//! stakeholder is a `MaskedStakeholder` for a caller who may not see it (null when asked for as one of the six
//! types), and a relationship with an end the caller sees masked is null, exactly as an id that does not exist.

use super::auth::{Caller, Need};
use super::error::{ApiError, ApiResult};
use super::ids::{relationship_id, stakeholder_id};
use super::loaders::Loaders;
use super::relationships::{load_relationship, Relationship};
use super::stakeholders::{
    Customer, Distributor, Employee, GovernmentBody, MaskedStakeholder, MediaOutlet, StakeholderNode, StakeholderView,
    Supplier,
};
use super::ApiContext;
use crate::domain::{Stakeholder, StakeholderId};
use async_graphql::{Any, Context, Object, SimpleObject, Union, Value, ID};
use std::collections::HashMap;
use std::sync::Arc;

/// The types keyed by `id` in the subgraph's SDL: the entity interface first, then every object type that is an
/// entity (the members of [`Entity`]).
pub const ENTITIES: [&str; 9] = [
    "Stakeholder",
    "Customer",
    "Supplier",
    "Distributor",
    "Employee",
    "MediaOutlet",
    "GovernmentBody",
    "MaskedStakeholder",
    "Relationship",
];

/// Federation's `_Entity` union: every entity object type.
#[derive(Union)]
#[graphql(name = "_Entity")]
pub enum Entity {
    /// A customer.
    Customer(Customer),
    /// A supplier.
    Supplier(Supplier),
    /// A distributor.
    Distributor(Distributor),
    /// An employee.
    Employee(Employee),
    /// A media outlet.
    MediaOutlet(MediaOutlet),
    /// A government body.
    GovernmentBody(GovernmentBody),
    /// A private stakeholder this caller may not see.
    MaskedStakeholder(MaskedStakeholder),
    /// A relationship.
    Relationship(Relationship),
}

impl From<StakeholderNode> for Entity {
    fn from(node: StakeholderNode) -> Self {
        match node {
            StakeholderNode::Customer(node) => Entity::Customer(node),
            StakeholderNode::Supplier(node) => Entity::Supplier(node),
            StakeholderNode::Distributor(node) => Entity::Distributor(node),
            StakeholderNode::Employee(node) => Entity::Employee(node),
            StakeholderNode::MediaOutlet(node) => Entity::MediaOutlet(node),
            StakeholderNode::GovernmentBody(node) => Entity::GovernmentBody(node),
            StakeholderNode::MaskedStakeholder(node) => Entity::MaskedStakeholder(node),
        }
    }
}

/// Federation's `_Service`.
#[derive(SimpleObject)]
#[graphql(name = "_Service")]
pub struct Service {
    /// The subgraph's SDL, with its federation directives.
    sdl: String,
}

/// The federation root fields.
#[derive(Default)]
pub struct EntityQuery;

/// One representation, read.
enum Representation {
    /// A stakeholder asked for as `typename` (`Stakeholder`, or one of the types).
    Stakeholder { typename: String, id: StakeholderId },
    /// A relationship.
    Relationship(crate::domain::RelationshipId),
}

/// Reads the representation at `index`: an object with an entity's `__typename` and its `id`.
fn representation(index: usize, any: &Any) -> ApiResult<Representation> {
    let field = format!("representations.{index}");
    let Value::Object(object) = &any.0 else {
        return Err(ApiError::bad_input(field, "is not an object; send `{ __typename, id }` for each entity"));
    };
    let text = |name: &str| match object.get(name) {
        Some(Value::String(text)) => Some(text.clone()),
        _ => None,
    };
    let (Some(typename), Some(id)) = (text("__typename"), text("id")) else {
        return Err(ApiError::bad_input(field, "needs `__typename` and `id`, both strings: the entity's key is `id`"));
    };
    let id = ID(id);
    match typename.as_str() {
        "Relationship" => Ok(Representation::Relationship(relationship_id(&id, &format!("{field}.id"))?)),
        name if ENTITIES.contains(&name) => {
            Ok(Representation::Stakeholder { id: stakeholder_id(&id, &format!("{field}.id"))?, typename })
        }
        _ => Err(ApiError::bad_input(
            format!("{field}.__typename"),
            format!("`{typename}` is not an entity of this subgraph; its entities are {}", ENTITIES.join(", ")),
        )),
    }
}

#[Object]
impl EntityQuery {
    /// The subgraph's SDL with its federation directives (`@key(fields: "id")` on every entity), for a router.
    /// Introspection: callers who may not introspect are refused it as they are refused `__schema`.
    #[graphql(name = "_service", guard = "Need::Read")]
    async fn service(&self) -> Service {
        Service { sdl: super::federation_sdl().to_owned() }
    }

    /// The entities these representations name, in the same order, as the caller may see them; null where there
    /// is none (or, asked for as one of the six stakeholder types, it is another, or masked for this caller). At
    /// most `limits.max_page_size` at a time; the stakeholders are read in one batch.
    #[graphql(name = "_entities", guard = "Need::Read")]
    async fn entities(&self, ctx: &Context<'_>, representations: Vec<Any>) -> ApiResult<Vec<Option<Entity>>> {
        let max = ctx.data_unchecked::<ApiContext>().limits.max_page_size;
        if representations.len() > max {
            return Err(ApiError::LimitExceeded {
                limit: "max_page_size",
                field: "representations".into(),
                message: format!(
                    "{} representations is more than {max}; ask for at most {max} at a time",
                    representations.len()
                ),
            });
        }
        let wanted: Vec<Representation> = representations
            .iter()
            .enumerate()
            .map(|(index, any)| representation(index, any))
            .collect::<Result<_, _>>()?;
        // One batch of stakeholders, and the relationships' loads side by side (one batch too).
        let ids = wanted.iter().filter_map(|wanted| match wanted {
            Representation::Stakeholder { id, .. } => Some(*id),
            Representation::Relationship(_) => None,
        });
        let found: HashMap<StakeholderId, Arc<Stakeholder>> = ctx.data_unchecked::<Loaders>().load_many(ids).await?;
        let relationships = wanted.iter().map(|wanted| async move {
            match wanted {
                Representation::Relationship(id) => load_relationship(ctx, *id).await,
                Representation::Stakeholder { .. } => Ok(None),
            }
        });
        let relationships = futures_util::future::try_join_all(relationships).await?;
        let caller = Caller::of(ctx);
        let mut entities = Vec::with_capacity(wanted.len());
        for (wanted, relationship) in wanted.into_iter().zip(relationships) {
            entities.push(match wanted {
                Representation::Relationship(_) => relationship.map(Entity::Relationship),
                Representation::Stakeholder { typename, id } => found
                    .get(&id)
                    .map(|record| Entity::from(StakeholderView::new(record.clone(), caller).into_node()))
                    .filter(|entity| typename == "Stakeholder" || entity.type_name() == typename),
            });
        }
        Ok(entities)
    }
}

impl Entity {
    /// The GraphQL type it resolves to.
    fn type_name(&self) -> &'static str {
        match self {
            Entity::Customer(_) => "Customer",
            Entity::Supplier(_) => "Supplier",
            Entity::Distributor(_) => "Distributor",
            Entity::Employee(_) => "Employee",
            Entity::MediaOutlet(_) => "MediaOutlet",
            Entity::GovernmentBody(_) => "GovernmentBody",
            Entity::MaskedStakeholder(_) => "MaskedStakeholder",
            Entity::Relationship(_) => "Relationship",
        }
    }
}
