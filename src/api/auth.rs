//! Access control: who the caller is (from the API key the HTTP layer checked) and what it may do.

use super::error::ApiError;
use super::ApiContext;
use crate::domain::Role;
use async_graphql::{Context, Guard};

/// Who sent a request. The HTTP layer puts one into every request; a request without one is anonymous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Caller {
    /// No key was sent.
    Anonymous,
    /// A valid key (or token) with its role.
    Key(Role),
    /// A valid token with its role whose visibility claim withholds private stakeholders: the role's rights, with
    /// every private stakeholder masked as for a viewer.
    Masked(Role),
    /// A key was sent but matches none configured.
    InvalidKey,
}

impl Caller {
    /// The caller of the request `ctx` belongs to.
    pub fn of(ctx: &Context<'_>) -> Caller {
        ctx.data_opt::<Caller>().copied().unwrap_or(Caller::Anonymous)
    }

    /// Whether this caller sees private stakeholders in full.
    pub fn sees_private(self) -> bool {
        matches!(self, Caller::Key(role) if role.sees_private())
    }

    /// The role of a valid key or token.
    pub fn role(self) -> Option<Role> {
        match self {
            Caller::Key(role) | Caller::Masked(role) => Some(role),
            Caller::Anonymous | Caller::InvalidKey => None,
        }
    }
}

/// Which configured API key a request came with: its place in the configured list, never the key itself. The
/// transports put one into every request made with a valid key; per-key limits count by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub usize);

impl KeyId {
    /// The id a token's subject counts under: a hash of it, above every configured key's place.
    pub fn of_subject(subject: &str) -> Self {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        subject.hash(&mut hasher);
        KeyId((hasher.finish() as usize) | (1 << (usize::BITS - 1)))
    }
}

/// What a field needs from its caller.
pub enum Need {
    /// Reading: any valid key, or anonymous where the server allows anonymous reads.
    Read,
    /// Writing: an editor or admin key.
    Write,
    /// Administration (webhooks): an admin key.
    Admin,
}

/// Who may introspect the schema (`__schema`, `__type`; `__typename` is always allowed): a deployment may keep its
/// schema from viewers (the committed `schema/schema.graphql` is what clients build against).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum Introspection {
    /// Every caller that may read (the default; GraphiQL needs it).
    #[default]
    Everyone,
    /// Editor and admin keys only.
    Editors,
    /// Admin keys only.
    Admins,
}

impl Introspection {
    /// Whether `caller` may introspect.
    pub fn allows(self, caller: Caller) -> bool {
        match (self, caller.role()) {
            (Introspection::Everyone, _) => true,
            (Introspection::Editors, Some(role)) => role.may_write(),
            (Introspection::Admins, Some(role)) => role == Role::Admin,
            (_, None) => false,
        }
    }

    /// The setting's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Introspection::Everyone => "everyone",
            Introspection::Editors => "editors",
            Introspection::Admins => "admins",
        }
    }
}

impl TryFrom<String> for Introspection {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl std::str::FromStr for Introspection {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "everyone" => Ok(Introspection::Everyone),
            "editors" => Ok(Introspection::Editors),
            "admins" => Ok(Introspection::Admins),
            _ => Err(format!("'{text}' is not who may introspect; write everyone, editors or admins")),
        }
    }
}

/// Why a request without a key is refused.
pub const NO_KEY: &str =
    "no API key was sent; send `Authorization: Bearer <key>` with a key configured in STAKEGRAPH_API_KEYS";
/// Why a request with an unknown key is refused.
pub const BAD_KEY: &str = "the API key is not valid; check it against the keys configured in STAKEGRAPH_API_KEYS";

impl Need {
    /// Checks the caller of `ctx`.
    pub fn check_caller(&self, ctx: &Context<'_>) -> Result<(), ApiError> {
        let anonymous_reads = ctx.data_opt::<ApiContext>().is_some_and(|api| api.anonymous_reads);
        let caller = Caller::of(ctx);
        match (self, caller, caller.role()) {
            (_, Caller::InvalidKey, _) => Err(ApiError::Unauthenticated(BAD_KEY.into())),
            (Need::Read, _, Some(_)) => Ok(()),
            (Need::Read, Caller::Anonymous, _) if anonymous_reads => Ok(()),
            (_, _, None) => Err(ApiError::Unauthenticated(NO_KEY.into())),
            (Need::Write, _, Some(role)) if role.may_write() => Ok(()),
            (Need::Admin, _, Some(Role::Admin)) => Ok(()),
            (Need::Admin, _, Some(role)) => Err(ApiError::Forbidden(format!(
                "a {} key may not administer the service; webhooks need an admin key",
                role.as_str()
            ))),
            (Need::Write, _, Some(role)) => Err(ApiError::Forbidden(format!(
                "a {} key may only read; changing the graph needs an editor or admin key",
                role.as_str()
            ))),
        }
    }
}

impl Guard for Need {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        self.check_caller(ctx).map_err(Into::into)
    }
}
