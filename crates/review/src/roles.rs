//! Who may do what: `viewer` (read the queue, traces and log), `reviewer` (also claim and
//! decide), `admin` (also manage role keys). Role keys are stored hashed, like API keys; the
//! gateway's admin token counts as an admin.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Reviewer,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "reviewer" => Some(Role::Reviewer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Reviewer => "reviewer",
            Role::Admin => "admin",
        }
    }

    pub fn may_decide(self) -> bool {
        self >= Role::Reviewer
    }

    pub fn may_administer(self) -> bool {
        self == Role::Admin
    }
}

/// Who is acting: the name the audit log records and their role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// `NAME (rk_…)` for a role key, `admin-token`, or `gateway` for the gateway's own acts.
    pub name: String,
    pub role: Role,
}

impl Actor {
    pub fn admin_token() -> Actor {
        Actor {
            name: "admin-token".into(),
            role: Role::Admin,
        }
    }

    pub fn gateway() -> Actor {
        Actor {
            name: "gateway".into(),
            role: Role::Admin,
        }
    }
}

/// Hex sha256 of a secret (what the store keeps).
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A new role key's id and secret: `rk_<12 hex>` and `emr_<12 hex>_<48 hex>`.
pub fn new_secret() -> (String, String) {
    let id_hex = hex::encode(rand::random::<[u8; 6]>());
    let secret = format!("emr_{id_hex}_{}", hex::encode(rand::random::<[u8; 24]>()));
    (format!("rk_{id_hex}"), secret)
}
