//! Who may do what: the roles an API key carries.

use super::values::InvalidValue;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// A caller's role; each role may do everything the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads; sees private stakeholders masked.
    Viewer,
    /// Reads and writes; sees private stakeholders in full.
    Editor,
    /// Everything, including administration.
    Admin,
}

impl Role {
    /// Whether this role may change the graph.
    pub fn may_write(self) -> bool {
        self >= Role::Editor
    }

    /// Whether this role sees private stakeholders in full.
    pub fn sees_private(self) -> bool {
        self >= Role::Editor
    }

    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = InvalidValue;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "viewer" => Ok(Role::Viewer),
            "editor" => Ok(Role::Editor),
            "admin" => Ok(Role::Admin),
            other => Err(InvalidValue(format!("'{other}' is not a role; use viewer, editor or admin"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered() {
        assert!(!Role::Viewer.may_write());
        assert!(Role::Editor.may_write());
        assert!(Role::Admin.sees_private());
        assert_eq!("Editor".parse::<Role>().unwrap(), Role::Editor);
        assert!("root".parse::<Role>().is_err());
    }
}
