//! The OpenAPI 3 description of the control API, served at `GET /v1/openapi.json`.
//!
//! The document is not written by hand: [`super::routes`] registers every handler through
//! `utoipa_axum`'s `routes!`, which adds the handler to the axum router *and* its
//! `#[utoipa::path]` operation to the document in one step, so a route cannot be served without
//! being described (and `clippy.toml` forbids the bare `route` methods that would bypass it).
//! This module holds what the handlers do not say themselves: the document's info, the bearer
//! security scheme, and schemas for bodies built as free JSON (errors, health, events,
//! sessions).

use std::borrow::Cow;
use std::sync::LazyLock;

use serde::Serialize;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

/// The name of the bearer-token security scheme the operations refer to.
pub const BEARER: &str = "bearer";

/// The document's fixed parts; the paths come from the router (see [`document`]).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "jitgate control API",
        description = "Just-in-time approvals for PostgreSQL and SSH: held requests, decisions, \
                       grants and the audit trail. Every error body is `{\"error\":\"…\"}`; \
                       401 without a valid bearer token, 404 for an unknown id, 409 for \
                       deciding a request that is no longer pending.\n\n\
                       Who may see what: every user sees their own requests, grants and \
                       sessions (with their events and recordings); an approver also sees the \
                       requests whose rule (in the config in force) names them as approvers, \
                       the sessions those came from and the grants they may revoke; the \
                       config's `[api] auditors` see everything and alone may export the trail \
                       and verify the chain (403 for others). An item the caller may not see \
                       is answered exactly like an unknown id (404), on reads and on approve, \
                       deny and revoke; lists leave it out before any limit.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    components(schemas(ErrorBody, Event, SessionRecord, Health, Verified, NodeVerified))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A user's API token; its SHA-256 is the user's `api_token_sha256`.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The whole document: [`ApiDoc`] plus every route [`super::routes`] registers.
pub fn document() -> utoipa::openapi::OpenApi {
    super::routes().into_openapi()
}

/// [`document`] as JSON, built once.
pub fn document_json() -> &'static str {
    static JSON: LazyLock<String> = LazyLock::new(|| {
        document().to_json().unwrap_or_else(|e| {
            tracing::error!("cannot encode the OpenAPI document: {e}");
            String::from("{}")
        })
    });
    &JSON
}

/// Every error the API returns.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a human.
    pub error: String,
}

/// `GET /healthz` once every listener is up.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    /// `ok` while the audit store accepts writes, `failed` once it has failed.
    pub audit: String,
    /// With `[cluster]` only: `ok` while the state store is connected and this replica's view
    /// of it current, `unreachable` otherwise.
    pub state: Option<String>,
    /// With `[cluster]` only: this replica's audit events not yet shipped to the state store.
    #[schema(required = false)]
    pub shipping_lag_events: Option<u64>,
}

/// The result of walking the audit hash chain.
#[derive(Serialize, ToSchema)]
pub struct Verified {
    /// Whether every link holds.
    pub ok: bool,
    /// How many events were checked (when `ok`).
    #[schema(required = false)]
    pub events: Option<u64>,
    /// The first broken link (when not `ok`); in cluster mode one per broken node,
    /// `node NAME: broken link at event N: …`, joined with `; `.
    #[schema(required = false)]
    pub error: Option<String>,
    /// Cluster mode: each replica's shipped chain, by node name.
    #[schema(required = false)]
    pub nodes: Option<Vec<NodeVerified>>,
}

/// One replica's shipped chain, walked (cluster mode).
#[derive(Serialize, ToSchema)]
pub struct NodeVerified {
    /// The replica's `[cluster] node`.
    pub node: String,
    /// Whether every link of its chain holds.
    pub ok: bool,
    /// Events checked (up to the break, if any).
    pub events: u64,
    /// The event whose link is broken (when not `ok`).
    #[schema(required = false)]
    pub seq: Option<u64>,
    /// Why (when not `ok`).
    #[schema(required = false)]
    pub error: Option<String>,
}

/// A session as the audit trail knows it: the schema of [`crate::audit::SessionRecord`]
/// (checked against its serialization by a unit test below).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct SessionRecord {
    pub id: String,
    /// `postgres` or `ssh`.
    pub protocol: String,
    pub user: String,
    pub target: String,
    /// The client's address.
    pub client: String,
    /// The client's `application_name`, if it sent one.
    #[schema(required = false)]
    pub application: Option<String>,
    /// Unix seconds.
    pub started_at: f64,
    /// Unix seconds; absent while the session is open.
    #[schema(required = false)]
    pub ended_at: Option<f64>,
    #[schema(required = false)]
    pub end_reason: Option<String>,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// One audit event (`GET /v1/sessions/{id}/events`, `GET /v1/audit/export`): the common
/// fields below, then the fields of its `kind` (free-form).
pub struct Event;

impl PartialSchema for Event {
    fn schema() -> RefOr<Schema> {
        let field = |t: Type, doc: &str| {
            ObjectBuilder::new()
                .schema_type(t)
                .description(Some(doc.to_string()))
        };
        ObjectBuilder::new()
            .description(Some(
                "One audit event: seq, at, session, kind and hash, plus the fields of its kind.",
            ))
            .property(
                "seq",
                field(Type::Integer, "Position in the store, increasing.").minimum(Some(0)),
            )
            .required("seq")
            .property(
                "at",
                field(Type::Number, "Unix seconds, microsecond resolution."),
            )
            .required("at")
            .property("session", field(Type::String, "The session's id."))
            .required("session")
            .property(
                "kind",
                field(
                    Type::String,
                    "What happened (session_start, statement, request_created, …).",
                ),
            )
            .required("kind")
            .property(
                "hash",
                field(Type::String, "Hex SHA-256 chain hash of this event."),
            )
            .required("hash")
            .additional_properties(Some(AdditionalProperties::FreeForm(true)))
            .into()
    }
}

impl ToSchema for Event {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Event")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_json(name: &str) -> serde_json::Value {
        let doc = serde_json::to_value(document()).expect("document as JSON");
        doc["components"]["schemas"][name].clone()
    }

    /// The hand-written SessionRecord schema names exactly the fields the real one serializes.
    #[test]
    fn session_schema_matches_session_record() {
        let full = crate::audit::SessionRecord {
            id: "s1".into(),
            protocol: "postgres".into(),
            user: "u".into(),
            target: "t".into(),
            client: "127.0.0.1:1".into(),
            application: Some("psql".into()),
            started_at: 1.0,
            ended_at: Some(2.0),
            end_reason: Some("client closed".into()),
            bytes_in: 1,
            bytes_out: 2,
        };
        let minimal = crate::audit::SessionRecord {
            application: None,
            ended_at: None,
            end_reason: None,
            ..full.clone()
        };
        let schema = schema_json("SessionRecord");
        let props: Vec<String> = schema["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .cloned()
            .collect();
        let required: Vec<String> = schema["required"]
            .as_array()
            .expect("required")
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .collect();
        let keys = |r: &crate::audit::SessionRecord| -> Vec<String> {
            let mut k: Vec<String> = serde_json::to_value(r)
                .expect("json")
                .as_object()
                .expect("object")
                .keys()
                .cloned()
                .collect();
            k.sort();
            k
        };
        let mut sorted_props = props.clone();
        sorted_props.sort();
        assert_eq!(keys(&full), sorted_props);
        let mut sorted_required = required;
        sorted_required.sort();
        assert_eq!(keys(&minimal), sorted_required);
    }

    #[test]
    fn document_is_openapi_3_with_bearer_auth() {
        let doc = serde_json::to_value(document()).expect("document as JSON");
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
        assert_eq!(
            doc["components"]["securitySchemes"][BEARER]["scheme"],
            "bearer"
        );
        for name in [
            "RequestView",
            "Grant",
            "Class",
            "State",
            "Event",
            "ErrorBody",
        ] {
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "schema {name} missing"
            );
        }
    }
}
