//! The mutation root: every mutation parses its input into commands and applies them in one store transaction.

use super::auth::{Caller, Need};
use super::error::{ApiError, ApiResult};
use super::ids::stakeholder_id;
use super::inputs::{
    CreateCustomerInput, CreateDistributorInput, CreateEmployeeInput, CreateGovernmentBodyInput,
    CreateMediaOutletInput, CreateProgramInput, CreateSupplierInput, ProgramMembershipInput, RecordCustomerExitInput,
    RecordCustomerWinBackInput, RecordInteractionsInput, UpdateCustomerInput, UpdateDistributorInput,
    UpdateEmployeeInput, UpdateGovernmentBodyInput, UpdateMediaOutletInput, UpdateSupplierInput,
    UpsertRelationshipInput, UpsertRelationshipsInput, UpsertStakeholdersInput,
};
use super::relationships::{Interaction, Relationship};
use super::stakeholders::{
    Customer, Distributor, Employee, GovernmentBody, MediaOutlet, StakeholderNode, StakeholderView, Supplier,
};
use super::ApiContext;
use crate::domain::{Command, Outcome};
use async_graphql::{Context, Object, SimpleObject, ID};
use chrono::Utc;
use std::sync::Arc;

/// Applies `command` now; a refusal points at `path` (where the mutation's input sits).
async fn apply_one(ctx: &Context<'_>, command: Command, path: &str) -> ApiResult<Outcome> {
    apply(ctx, vec![command], &[path.to_owned()]).await?.into_iter().next().ok_or(ApiError::Internal)
}

/// Applies `commands` now in one transaction; a refusal points at the path of the command refused. The outcomes,
/// in order.
async fn apply(ctx: &Context<'_>, commands: Vec<Command>, paths: &[String]) -> ApiResult<Vec<Outcome>> {
    let api = ctx.data_unchecked::<ApiContext>();
    let applied = api
        .store
        .apply(commands, Utc::now())
        .await
        .map_err(|error| ApiError::from_store(error, |index| paths.get(index).cloned().unwrap_or_default()))?;
    tracing::debug!(events = applied.events.len(), "applied");
    // The write is visible to analyses once the mutation returns: a built projection catches up now; one being
    // built (its scan may predate the write) or not built yet is brought this far before any analysis reads it.
    if let Some(written) = applied.events.iter().map(|event| event.seq).max() {
        if let Err(error) = api.engine.reflect(written).await {
            tracing::warn!(%error, "the projection could not catch up with a write; it will retry");
        }
    }
    Ok(applied.outcomes)
}

/// The stakeholder a command produced, as the caller may see it.
async fn stakeholder_outcome(ctx: &Context<'_>, command: Command, path: &str) -> ApiResult<StakeholderNode> {
    match apply_one(ctx, command, path).await? {
        Outcome::Stakeholder(stakeholder) => {
            Ok(StakeholderView::new(Arc::new(stakeholder), Caller::of(ctx)).into_node())
        }
        _ => Err(ApiError::Internal),
    }
}

/// Declares `fn $name(node) -> ApiResult<$object>`, unwrapping the object of one kind.
macro_rules! expect_kind {
    ($name:ident, $variant:ident, $object:ident) => {
        fn $name(node: StakeholderNode) -> ApiResult<$object> {
            match node {
                StakeholderNode::$variant(object) => Ok(object),
                _ => Err(ApiError::Internal),
            }
        }
    };
}

expect_kind!(as_customer, Customer, Customer);
expect_kind!(as_supplier, Supplier, Supplier);
expect_kind!(as_distributor, Distributor, Distributor);
expect_kind!(as_employee, Employee, Employee);
expect_kind!(as_media, MediaOutlet, MediaOutlet);
expect_kind!(as_government, GovernmentBody, GovernmentBody);

/// What `upsertRelationship` did.
#[derive(SimpleObject)]
pub struct UpsertRelationshipPayload {
    /// The relationship as it is now.
    pub relationship: Relationship,
    /// True when the relationship was new.
    pub created: bool,
}

/// How many items of a bulk upsert were new, changed, or found as given.
#[derive(SimpleObject, Default)]
pub struct UpsertCounts {
    /// How many were new.
    pub created: usize,
    /// How many existed and changed.
    pub changed: usize,
    /// How many existed as given: nothing written, nothing logged.
    pub unchanged: usize,
}

impl UpsertCounts {
    fn add(&mut self, created: bool, changed: bool) {
        match (created, changed) {
            (true, _) => self.created += 1,
            (false, true) => self.changed += 1,
            (false, false) => self.unchanged += 1,
        }
    }
}

/// What `upsertStakeholders` did.
#[derive(SimpleObject)]
pub struct UpsertStakeholdersPayload {
    /// Each stakeholder as it is now, in input order (customers, suppliers, distributors, employees, media
    /// outlets, government bodies).
    pub stakeholders: Vec<StakeholderNode>,
    #[graphql(flatten)]
    pub counts: UpsertCounts,
}

/// What `upsertRelationships` did.
#[derive(SimpleObject)]
pub struct UpsertRelationshipsPayload {
    /// Each relationship as it is now, in input order.
    pub relationships: Vec<Relationship>,
    #[graphql(flatten)]
    pub counts: UpsertCounts,
}

/// What `recordInteractions` recorded.
#[derive(SimpleObject)]
pub struct RecordInteractionsPayload {
    /// The interactions, in input order: recorded now, or, for one whose key was recorded before, as it was
    /// recorded then.
    pub interactions: Vec<Interaction>,
    /// How many this request recorded (those whose keys were recorded before are listed but not counted).
    pub count: usize,
}

/// Writes. Every mutation is all-or-nothing and appends to the change log in the same transaction.
#[derive(Default)]
pub struct GraphMutation;

#[Object]
impl GraphMutation {
    /// Creates a customer.
    #[graphql(guard = "Need::Write")]
    async fn create_customer(&self, ctx: &Context<'_>, input: CreateCustomerInput) -> ApiResult<Customer> {
        as_customer(stakeholder_outcome(ctx, input.parse("input", Utc::now().date_naive())?, "input").await?)
    }

    /// Creates a supplier.
    #[graphql(guard = "Need::Write")]
    async fn create_supplier(&self, ctx: &Context<'_>, input: CreateSupplierInput) -> ApiResult<Supplier> {
        as_supplier(stakeholder_outcome(ctx, input.parse("input")?, "input").await?)
    }

    /// Creates a distributor.
    #[graphql(guard = "Need::Write")]
    async fn create_distributor(&self, ctx: &Context<'_>, input: CreateDistributorInput) -> ApiResult<Distributor> {
        as_distributor(stakeholder_outcome(ctx, input.parse("input")?, "input").await?)
    }

    /// Creates an employee or candidate.
    #[graphql(guard = "Need::Write")]
    async fn create_employee(&self, ctx: &Context<'_>, input: CreateEmployeeInput) -> ApiResult<Employee> {
        as_employee(stakeholder_outcome(ctx, input.parse("input")?, "input").await?)
    }

    /// Creates a media outlet.
    #[graphql(guard = "Need::Write")]
    async fn create_media_outlet(&self, ctx: &Context<'_>, input: CreateMediaOutletInput) -> ApiResult<MediaOutlet> {
        as_media(stakeholder_outcome(ctx, input.parse("input")?, "input").await?)
    }

    /// Creates a government body.
    #[graphql(guard = "Need::Write")]
    async fn create_government_body(
        &self,
        ctx: &Context<'_>,
        input: CreateGovernmentBodyInput,
    ) -> ApiResult<GovernmentBody> {
        as_government(stakeholder_outcome(ctx, input.parse("input")?, "input").await?)
    }

    /// Changes a customer.
    #[graphql(guard = "Need::Write")]
    async fn update_customer(&self, ctx: &Context<'_>, input: UpdateCustomerInput) -> ApiResult<Customer> {
        as_customer(stakeholder_outcome(ctx, input.parse("input", Utc::now().date_naive())?, "input").await?)
    }

    /// Changes a supplier.
    #[graphql(guard = "Need::Write")]
    async fn update_supplier(&self, ctx: &Context<'_>, input: UpdateSupplierInput) -> ApiResult<Supplier> {
        as_supplier(stakeholder_outcome(ctx, input.parse("input")?, "input").await?)
    }

    /// Changes a distributor.
    #[graphql(guard = "Need::Write")]
    async fn update_distributor(&self, ctx: &Context<'_>, input: UpdateDistributorInput) -> ApiResult<Distributor> {
        as_distributor(stakeholder_outcome(ctx, input.parse("input")?, "input").await?)
    }

    /// Changes an employee.
    #[graphql(guard = "Need::Write")]
    async fn update_employee(&self, ctx: &Context<'_>, input: UpdateEmployeeInput) -> ApiResult<Employee> {
        as_employee(stakeholder_outcome(ctx, input.parse("input")?, "input").await?)
    }

    /// Changes a media outlet.
    #[graphql(guard = "Need::Write")]
    async fn update_media_outlet(&self, ctx: &Context<'_>, input: UpdateMediaOutletInput) -> ApiResult<MediaOutlet> {
        as_media(stakeholder_outcome(ctx, input.parse("input")?, "input").await?)
    }

    /// Changes a government body.
    #[graphql(guard = "Need::Write")]
    async fn update_government_body(
        &self,
        ctx: &Context<'_>,
        input: UpdateGovernmentBodyInput,
    ) -> ApiResult<GovernmentBody> {
        as_government(stakeholder_outcome(ctx, input.parse("input")?, "input").await?)
    }

    /// Archives a stakeholder: it is kept with its history, left out of listings, and can no longer change.
    #[graphql(guard = "Need::Write")]
    async fn archive_stakeholder(&self, ctx: &Context<'_>, id: ID) -> ApiResult<StakeholderNode> {
        let id = stakeholder_id(&id, "id")?;
        stakeholder_outcome(ctx, Command::ArchiveStakeholder { id }, "").await
    }

    /// Creates stakeholders of every kind, or updates them by `key`, up to `limits.max_batch` in one call and one
    /// transaction: all or nothing, each change in the change log (none for a record sent again unchanged).
    #[graphql(guard = "Need::Write")]
    async fn upsert_stakeholders(
        &self,
        ctx: &Context<'_>,
        input: UpsertStakeholdersInput,
    ) -> ApiResult<UpsertStakeholdersPayload> {
        let api = ctx.data_unchecked::<ApiContext>();
        let upserts = input.parse("input", Utc::now().date_naive(), api.limits.max_batch)?;
        let (commands, paths): (Vec<Command>, Vec<String>) = upserts.into_iter().unzip();
        let applied = apply(ctx, commands, &paths).await?;
        let caller = Caller::of(ctx);
        let mut payload = UpsertStakeholdersPayload { stakeholders: Vec::new(), counts: UpsertCounts::default() };
        for outcome in applied {
            let Outcome::StakeholderUpserted { stakeholder, created, changed } = outcome else {
                return Err(ApiError::Internal);
            };
            payload.counts.add(created, changed);
            payload.stakeholders.push(StakeholderView::new(Arc::new(stakeholder), caller).into_node());
        }
        Ok(payload)
    }

    /// Creates or changes relationships between stakeholders named by their keys, up to `limits.max_batch` in one
    /// call and one transaction: all or nothing, each change in the change log (none for a relationship sent again
    /// unchanged).
    #[graphql(guard = "Need::Write")]
    async fn upsert_relationships(
        &self,
        ctx: &Context<'_>,
        input: UpsertRelationshipsInput,
    ) -> ApiResult<UpsertRelationshipsPayload> {
        let api = ctx.data_unchecked::<ApiContext>();
        let upserts = input.parse("input", api.limits.max_batch)?;
        let (commands, paths): (Vec<Command>, Vec<String>) = upserts.into_iter().unzip();
        let applied = apply(ctx, commands, &paths).await?;
        let mut payload = UpsertRelationshipsPayload { relationships: Vec::new(), counts: UpsertCounts::default() };
        for outcome in applied {
            let Outcome::Relationship { relationship, created, changed } = outcome else {
                return Err(ApiError::Internal);
            };
            payload.counts.add(created, changed);
            payload.relationships.push(Relationship(relationship));
        }
        Ok(payload)
    }

    /// Creates or changes the relationship `(from, to, type)`.
    #[graphql(guard = "Need::Write")]
    async fn upsert_relationship(
        &self,
        ctx: &Context<'_>,
        input: UpsertRelationshipInput,
    ) -> ApiResult<UpsertRelationshipPayload> {
        match apply_one(ctx, input.parse("input")?, "input").await? {
            Outcome::Relationship { relationship, created, .. } => {
                Ok(UpsertRelationshipPayload { relationship: Relationship(relationship), created })
            }
            _ => Err(ApiError::Internal),
        }
    }

    /// Records a batch of interactions, all or nothing.
    #[graphql(guard = "Need::Write")]
    async fn record_interactions(
        &self,
        ctx: &Context<'_>,
        input: RecordInteractionsInput,
    ) -> ApiResult<RecordInteractionsPayload> {
        let max_batch = ctx.data_unchecked::<ApiContext>().limits.max_batch;
        let command = input.parse("input", max_batch)?;
        match apply_one(ctx, command, "input.interactions").await? {
            Outcome::Interactions { interactions, recorded } => Ok(RecordInteractionsPayload {
                count: recorded,
                interactions: interactions.into_iter().map(Interaction).collect(),
            }),
            _ => Err(ApiError::Internal),
        }
    }

    /// Records that a customer left: status CHURNED, with reason and date.
    #[graphql(guard = "Need::Write")]
    async fn record_customer_exit(&self, ctx: &Context<'_>, input: RecordCustomerExitInput) -> ApiResult<Customer> {
        let command = input.parse("input", Utc::now().date_naive())?;
        as_customer(stakeholder_outcome(ctx, command, "input").await?)
    }

    /// Records that a customer who left came back: status WON_BACK, dated (a win-back in `exitAnalysis`).
    #[graphql(guard = "Need::Write")]
    async fn record_customer_win_back(
        &self,
        ctx: &Context<'_>,
        input: RecordCustomerWinBackInput,
    ) -> ApiResult<Customer> {
        let command = input.parse("input", Utc::now().date_naive())?;
        as_customer(stakeholder_outcome(ctx, command, "input").await?)
    }

    /// Creates a relationship-marketing programme (a frequency programme, a customer club or a customisation
    /// programme); its key must be unused by any other programme.
    #[graphql(guard = "Need::Write")]
    async fn create_program(
        &self,
        ctx: &Context<'_>,
        input: CreateProgramInput,
    ) -> ApiResult<super::programs::Program> {
        match apply_one(ctx, input.parse("input")?, "input").await? {
            Outcome::Program(program) => Ok(super::programs::Program::of(program)),
            _ => Err(ApiError::Internal),
        }
    }

    /// Enrols a customer in a programme on a day (default today): not a prospect, not before it became a
    /// customer, not while it is a member, not inside an earlier membership of the same programme.
    #[graphql(guard = "Need::Write")]
    async fn enrol_in_program(&self, ctx: &Context<'_>, input: ProgramMembershipInput) -> ApiResult<Customer> {
        let command = input.parse("input", Utc::now().date_naive(), true)?;
        as_customer(stakeholder_outcome(ctx, command, "input").await?)
    }

    /// Records that a customer left a programme on a day (default today): it must be a member, since that day or
    /// before.
    #[graphql(guard = "Need::Write")]
    async fn leave_program(&self, ctx: &Context<'_>, input: ProgramMembershipInput) -> ApiResult<Customer> {
        let command = input.parse("input", Utc::now().date_naive(), false)?;
        as_customer(stakeholder_outcome(ctx, command, "input").await?)
    }
}
