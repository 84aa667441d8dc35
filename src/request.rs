//! The request types the approval flow and the audit trail share: what a request is
//! ([`RequestView`], as the API shows it and the audit store keeps it), its [`State`], its
//! approvals and its [`Impact`].
//!
//! A leaf: this module imports neither [`crate::approval`] (which opens and decides requests)
//! nor [`crate::audit`] (which stores them and names their states in its events), so both can
//! import it and neither has to import the other's types. `approval → audit` is the only
//! dependency between those two.
//!
//! The names are part of the API's OpenAPI document (`ToSchema` schemas `State`,
//! `ApprovalRecord`, `Impact`, `RequestView`); `crate::approval` re-exports them.

use serde::Serialize;

use crate::policy::Class;

/// Where a request is: `pending` until it is approved, denied, expired or cancelled, once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Pending,
    Approved,
    Denied,
    Expired,
    Cancelled,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Denied => "denied",
            State::Expired => "expired",
            State::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        [
            State::Pending,
            State::Approved,
            State::Denied,
            State::Expired,
            State::Cancelled,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// One approver's approval of a request.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ApprovalRecord {
    pub by: String,
    pub at: u64,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_secs: Option<u64>,
}

/// What a held statement would touch; for a Postgres write, the planner's row estimate
/// (from EXPLAIN, which runs nothing).
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct Impact {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_rows: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A request as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct RequestView {
    pub id: String,
    pub state: State,
    pub user: String,
    pub target: String,
    pub protocol: String,
    pub class: Class,
    pub statement: String,
    pub tables: Vec<String>,
    pub rule: String,
    pub source: String,
    pub session: String,
    /// The replica holding the session (`[cluster] node`); absent for a single jitgate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub created_at: u64,
    pub expires_at: u64,
    pub approvals: Vec<ApprovalRecord>,
    pub approvals_required: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
    pub impact: Impact,
}
