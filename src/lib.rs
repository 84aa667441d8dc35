//! jitgate: a just-in-time approval proxy for PostgreSQL and SSH.
//!
//! Data flows one way: a protocol front end ([`pg`], [`ssh`]) turns bytes into an action,
//! asks the [`gate`] for a verdict, and only then forwards the bytes. Invariant: nothing
//! reaches a target without a [`gate::Permit`], which only the Gate can make.
//!
//! # Where a PostgreSQL statement goes
//! 1. [`lifecycle`]: the one accept loop takes the TCP connection and a session slot.
//! 2. `pg/startup.rs`: TLS, the startup packet and the user's SCRAM authentication;
//!    `pg/upstream.rs` connects to the target with the proxy's own credentials;
//!    `pg/cancel.rs` registers the session's cancel key.
//! 3. `pg/relay/mod.rs`: the session's select loop reads the client's bytes;
//!    `pg/relay/framer.rs` cuts them into frames.
//! 4. `pg/relay/client.rs`: a Query, Execute or FunctionCall is classified through the
//!    cache ([`policy::cache`], then [`policy::sql`]) and decided by
//!    [`gate::Gate::check`]: rules ([`policy::rules`]), grants and requests ([`approval`]),
//!    and its audit event ([`audit`]).
//! 5. Allowed, it is appended to the bytes for the server; held, it waits in
//!    `pg/relay/hold.rs` for an approval from the API ([`api`]); refused, it is replaced by a
//!    statement that fails upstream.
//! 6. `pg/relay/tracker.rs` queues what awaits the server; `pg/relay/server.rs` reads the
//!    answers, records results and rewrites refusals; `pg/relay/txn.rs` tracks the
//!    transaction for the audit trail's commit barrier.
//!
//! An SSH command takes the same path through `ssh/handler.rs` (authentication, channel
//! requests), `ssh/channel.rs` (exec and shell), [`policy::shell`] and `ssh/trail.rs` (the
//! Gate's verdict), then `ssh/upstream.rs` to the target.
//!
//! # Dependency direction
//! [`policy`] (pure classification and rules), [`request`] (request types) and [`escape`]
//! (user text made safe for terminals and chat) are leaves;
//! [`config`] imports policy; [`audit`] imports those three; [`approval`] imports them and
//! the audit trail; the [`gate`] imports those; [`pg`], [`ssh`] and [`api`] sit on top. Never: policy, approval or audit
//! importing a protocol module. [`app::AppState`] holds the wiring that [`server`] builds.

pub mod api;
pub mod app;
pub mod approval;
pub mod audit;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod escape;
pub mod gate;
pub mod lifecycle;
pub mod metrics;
pub mod notify;
pub mod pg;
pub mod policy;
pub mod reload;
pub mod request;
pub mod scram;
pub mod secret;
pub mod server;
pub mod ssh;
pub mod tls;
pub mod webhook;
