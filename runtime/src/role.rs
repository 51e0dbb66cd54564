//! [`Role`]: whether a component is a spout or a bolt — the one spelling of it, from the
//! validation messages and the registry of kinds to the metrics and the endpoint's JSON.
//!
//! ```text
//! ComponentFactory::Spout / ::Bolt ──role()──► Role ──► ValidationError.role  ("bolt `count`: …")
//!                                                  ├──► ComponentSnapshot.role (metrics, JSON "kind")
//!                                                  └──► registry kinds ([spouts.x] / [bolts.x])
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

/// Whether a component is a spout (a source) or a bolt (a processing step). Written `spout` and
/// `bolt`, as text and in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A source.
    Spout,
    /// A processing step.
    Bolt,
}

impl Role {
    /// `spout` or `bolt`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Spout => "spout",
            Role::Bolt => "bolt",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_reads_the_same_as_text_and_as_json() {
        for (role, text) in [(Role::Spout, "spout"), (Role::Bolt, "bolt")] {
            assert_eq!(role.as_str(), text);
            assert_eq!(role.to_string(), text);
            let json = serde_json::to_string(&role).expect("serializable");
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<Role>(&json).expect("readable"), role);
        }
    }
}
