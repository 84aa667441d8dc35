//! Who may see what through the API. Every handler that reads or acts on a request, grant or
//! session asks a [`Viewer`] (an extractor: the caller's token, resolved against the config
//! in force), so the rules live here once and the CLI, scripts and any console all get the
//! same answer.
//!
//! The rules:
//! - everyone with a token sees their own requests, grants and sessions (with the sessions'
//!   events and recordings);
//! - an approver also sees the requests whose rule, under today's policy, names them among its
//!   `approvers` (whoever made them), and the sessions those requests came from;
//! - a grant is seen by whoever may revoke it: its grantee and the approvers of the request it
//!   came from;
//! - `[api] auditors` see everything, and only they may export the trail or verify the chain.
//!
//! The caller is named by a bearer token or, for the web console, by its session cookie
//! (`console::cookie_user`, which also demands the CSRF token on POST and DELETE); both
//! resolve to the same user and get the same answers.
//!
//! Invariants: an item the caller may not see is answered exactly like one that does not
//! exist (404 with the same body), so an id says nothing about other people's items; lists
//! leave such items out *before* any limit is applied, so a count says nothing either. A
//! request whose owner or rule cannot be read is seen by auditors only (fail closed).

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde_json::Value;

use super::{Api, ApiError, auth, err, read};
use crate::approval::Grant;
use crate::audit::SessionRecord;
use crate::config::{Config, User};

/// The caller and the policy their rights are judged under (one config snapshot).
pub(super) struct Viewer {
    pub user: Arc<User>,
    config: Arc<Config>,
    /// The web console's cookie when the caller came with one: long-lived answers end with
    /// its session.
    console_cookie: Option<String>,
}

impl FromRequestParts<Api> for Viewer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Self, ApiError> {
        let config = api.app.config();
        // A bearer token decides when present; else the web console's cookie (with its CSRF
        // token on anything that changes state); the same rules below judge either.
        let (user, console_cookie) = match super::console::cookie_user(api, &config, parts)? {
            Some((user, cookie)) => (user, Some(cookie)),
            None => (auth::authenticate(&config, &parts.headers)?, None),
        };
        Ok(Viewer {
            user,
            config,
            console_cookie,
        })
    }
}

/// The answer for a request that is not there or not the caller's to see.
pub(super) fn no_such_request() -> ApiError {
    err(StatusCode::NOT_FOUND, "no such request")
}

/// The answer for a session that is not there or not the caller's to see.
pub(super) fn no_such_session() -> ApiError {
    err(StatusCode::NOT_FOUND, "no such session")
}

/// The answer for a grant that is not live or not the caller's to see.
pub(super) fn no_such_grant() -> ApiError {
    err(StatusCode::NOT_FOUND, "no such live grant")
}

impl Viewer {
    /// The same user judged under the config in force now, for long-lived answers (the event
    /// stream); `None` once the user is gone from the config, or the console session the
    /// caller came with has ended (signed out, expired, token changed).
    pub fn current(&self, api: &Api) -> Option<Viewer> {
        let config = api.app.config();
        if let Some(cookie) = &self.console_cookie {
            api.console
                .find(cookie, &config, std::time::Instant::now())?;
        }
        let user = config.user(&self.user.name)?.clone();
        Some(Viewer {
            user,
            config,
            console_cookie: self.console_cookie.clone(),
        })
    }

    pub fn is_auditor(&self) -> bool {
        self.config.api.is_auditor(&self.user)
    }

    /// 403 unless the caller is an auditor.
    pub fn require_auditor(&self) -> Result<(), ApiError> {
        if self.is_auditor() {
            Ok(())
        } else {
            Err(err(
                StatusCode::FORBIDDEN,
                "only auditors (config [api] auditors) may read the whole audit trail",
            ))
        }
    }

    /// Whether today's rule named `rule` lists the caller among its approvers.
    fn approves_rule(&self, rule: &str) -> bool {
        self.config
            .rules
            .iter()
            .filter(|r| *r.name == *rule)
            .any(|r| self.is_among(r))
    }

    fn is_among(&self, rule: &crate::policy::rules::Rule) -> bool {
        rule.approvers
            .iter()
            .any(|a| a.matches(&self.user.name, &self.user.groups))
    }

    /// Whether the caller approves for any rule at all (else no request of others is theirs).
    fn approves_any_rule(&self) -> bool {
        self.config.rules.iter().any(|r| self.is_among(r))
    }

    /// Whether the caller sees a request (as the API serves it: `user` and `rule` fields).
    pub fn sees_request(&self, request: &Value) -> bool {
        if self.is_auditor() {
            return true;
        }
        let field = |k: &str| request.get(k).and_then(Value::as_str);
        field("user") == Some(self.user.name.as_str())
            || field("rule").is_some_and(|rule| self.approves_rule(rule))
    }

    /// `request` as this caller gets it: with `can_decide` (whether approve and deny are
    /// theirs to press: pending, not their own, their rule, not yet approved by them) and the
    /// rule's `max_grant_secs` under today's policy, so a client need not guess.
    pub fn annotate(&self, mut request: Value) -> Value {
        let field = |k: &str| request.get(k).and_then(Value::as_str);
        let rule_name = field("rule").map(str::to_string);
        let already = request
            .get("approvals")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|x| x["by"] == self.user.name.as_str()));
        let can_decide = field("state") == Some("pending")
            && field("user").is_some_and(|u| u != self.user.name)
            && rule_name.as_deref().is_some_and(|r| self.approves_rule(r))
            && !already;
        let max_grant = rule_name.and_then(|name| {
            let rule = self.config.rules.iter().find(|r| *r.name == *name)?;
            Some(rule.max_grant.as_secs())
        });
        if let Some(fields) = request.as_object_mut() {
            fields.insert("can_decide".into(), Value::Bool(can_decide));
            if let Some(secs) = max_grant {
                fields.insert("max_grant_secs".into(), Value::from(secs));
            }
        }
        request
    }

    /// Whether the caller sees a grant: its grantee, whoever may revoke it, and auditors.
    pub fn sees_grant(&self, grant: &Grant) -> bool {
        self.is_auditor() || grant.revocable_by(&self.user)
    }

    /// Request `id` (live first, then the audit store), if the caller sees it; otherwise the
    /// same 404 as for an id that does not exist.
    pub async fn request(&self, api: &Api, id: &str) -> Result<Value, ApiError> {
        let live = api
            .app
            .approvals
            .get(id)
            .and_then(|r| serde_json::to_value(r).ok());
        let audit = api.app.audit.clone();
        let id = id.to_string();
        let request = match live {
            Some(r) => Some(r),
            None => read(move || audit.request(&id)).await?,
        };
        request
            .filter(|r| self.sees_request(r))
            .ok_or_else(no_such_request)
    }

    /// Which sessions the caller sees; reads the requests only for approvers.
    pub async fn session_scope(&self, api: &Api) -> Result<SessionScope, ApiError> {
        let mut scope = SessionScope {
            all: self.is_auditor(),
            user: self.user.name.clone(),
            decidable: HashSet::new(),
        };
        if !scope.all && self.approves_any_rule() {
            scope.decidable = known_requests(api)
                .await?
                .iter()
                .filter(|r| {
                    r.get("rule")
                        .and_then(Value::as_str)
                        .is_some_and(|rule| self.approves_rule(rule))
                })
                .filter_map(|r| Some(r.get("session")?.as_str()?.to_string()))
                .collect();
        }
        Ok(scope)
    }

    /// Session `id`'s record if the caller sees it, else 404. An auditor also gets `Ok(None)`
    /// for a session the store has events of but no record.
    pub async fn session(&self, api: &Api, id: &str) -> Result<Option<SessionRecord>, ApiError> {
        let session = api
            .app
            .history
            .session(id)
            .await
            .map_err(super::sessions::unreadable)?;
        if self.is_auditor() {
            return Ok(session);
        }
        let session = session.ok_or_else(no_such_session)?;
        if self.session_scope(api).await?.sees(&session) {
            Ok(Some(session))
        } else {
            Err(no_such_session())
        }
    }
}

/// The sessions one caller sees: all, or their own and those their decidable requests came
/// from.
pub(super) struct SessionScope {
    all: bool,
    user: String,
    decidable: HashSet<String>,
}

impl SessionScope {
    pub fn sees(&self, s: &SessionRecord) -> bool {
        self.all || s.user == self.user || self.decidable.contains(&s.id)
    }
}

/// Every request known, oldest first: decided ones from the audit store (they outlive the
/// process), overlaid by the live ones in memory (fresher: impact previews are not stored).
pub(super) async fn known_requests(api: &Api) -> Result<Vec<Value>, ApiError> {
    let live = api.app.approvals.list(None);
    let audit = api.app.audit.clone();
    let stored = read(move || audit.requests()).await?;
    let mut by_id: std::collections::BTreeMap<String, Value> = stored
        .into_iter()
        .filter_map(|r| Some((r.get("id")?.as_str()?.to_string(), r)))
        .collect();
    for r in live {
        if let Ok(v) = serde_json::to_value(&r) {
            by_id.insert(r.id.clone(), v);
        }
    }
    let mut list: Vec<Value> = by_id.into_values().collect();
    list.sort_by_key(|r| r.get("created_at").and_then(Value::as_u64).unwrap_or(0));
    Ok(list)
}
