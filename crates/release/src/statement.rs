//! in-toto Statement v1: what is attested (subjects with their sha256) and a typed claim
//! about them (the predicate). <https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md>

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The DSSE payload type of a Statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub statement_type: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: serde_json::Value,
}

/// A ResourceDescriptor with a name and digests (`sha256` here).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    pub name: String,
    pub digest: BTreeMap<String, String>,
}

impl Subject {
    pub fn sha256(name: impl Into<String>, sha256: impl Into<String>) -> Subject {
        Subject {
            name: name.into(),
            digest: BTreeMap::from([("sha256".to_string(), sha256.into())]),
        }
    }

    pub fn sha256_digest(&self) -> Option<&str> {
        self.digest.get("sha256").map(String::as_str)
    }
}

impl Statement {
    pub fn new(subject: Subject, predicate_type: &str, predicate: serde_json::Value) -> Statement {
        Statement {
            statement_type: STATEMENT_TYPE.to_string(),
            subject: vec![subject],
            predicate_type: predicate_type.to_string(),
            predicate,
        }
    }
}
