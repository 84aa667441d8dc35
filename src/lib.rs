//! jitgate: a just-in-time approval proxy for PostgreSQL and SSH.
//!
//! Data flows one way: a protocol front end ([`pg`]) turns bytes into an action, asks the
//! [`gate`] for a verdict, and only then forwards the bytes. [`policy`], [`approval`] and the
//! audit trail never depend on a protocol module. [`request`] holds the request types both
//! [`approval`] and [`audit`] use, so the dependency between those two runs one way:
//! `approval → audit`.

pub mod api;
pub mod app;
pub mod approval;
pub mod audit;
pub mod cli;
pub mod config;
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
