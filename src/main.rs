//! The `jitgate` command line. Every subcommand is a thin call into the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use jitgate::cli;

#[derive(Parser)]
#[command(
    name = "jitgate",
    version,
    about = "Just-in-time approval proxy for PostgreSQL and SSH"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every listener the config names (Postgres, SSH, control API).
    #[command(after_help = "Example:\n  jitgate serve --config /etc/jitgate/jitgate.toml")]
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// Validate a config file and print `ok` or every problem, one per line.
    #[command(after_help = "Example:\n  jitgate check-config --config proxy-config/jitgate.toml")]
    CheckConfig {
        #[arg(long)]
        config: PathBuf,
    },
    /// Dry-run the policy for one statement or command (or JSON Lines on stdin with --stdin).
    #[command(
        after_help = "Examples:\n  jitgate classify --config jitgate.toml --target app-db --user alice 'DELETE FROM t'\n  jq -R . queries.sql | jitgate classify --config jitgate.toml --target app-db --user alice --stdin"
    )]
    Classify {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        target: String,
        #[arg(long)]
        user: String,
        #[arg(long, default_value = "127.0.0.1")]
        source: std::net::IpAddr,
        /// Read JSON Lines (one JSON string per line) from stdin.
        #[arg(long)]
        stdin: bool,
        input: Option<String>,
    },
    /// Read a password on stdin and print a SCRAM-SHA-256 verifier for the config.
    #[command(after_help = "Example:\n  printf '%s' 's3cret' | jitgate hash-password")]
    HashPassword,
    /// List approval requests, or show one whole.
    #[command(
        after_help = "Examples:\n  JITGATE_TOKEN=... jitgate requests --state pending\n  jitgate requests show r4k2..."
    )]
    Requests {
        #[command(subcommand)]
        command: Option<RequestsCommand>,
        /// pending | approved | denied | expired | cancelled
        #[arg(long)]
        state: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Approve a request: this statement once, or a grant for a while with --grant.
    #[command(
        after_help = "Examples:\n  jitgate approve r4k2... --reason 'ticket 123'\n  jitgate approve r4k2... --grant 15m --reason 'migration window'\n  jitgate approve r4k2... --grant 10m --scope tables"
    )]
    Approve {
        id: String,
        /// Also let the same user run statements like this one for this long (e.g. 15m); see --scope.
        #[arg(long, value_parser = parse_duration)]
        grant: Option<std::time::Duration>,
        /// What the grant covers: shape (this statement with other literal values, the default),
        /// tables (any statement of the same class on the same tables) or exact (this text only).
        #[arg(long, requires = "grant", value_parser = ["shape", "tables", "exact"])]
        scope: Option<String>,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Deny a request; the held client gets SQLSTATE 42501 with the reason.
    #[command(
        after_help = "Example:\n  jitgate deny r4k2... --reason 'use the migration pipeline'"
    )]
    Deny {
        id: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List live grants.
    #[command(after_help = "Example:\n  jitgate grants")]
    Grants {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List sessions from the audit trail, most recent last.
    #[command(
        after_help = "Examples:\n  jitgate sessions --user alice --since 2h\n  jitgate sessions --data-dir /var/lib/jitgate   # offline, while jitgate is stopped"
    )]
    Sessions {
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        target: Option<String>,
        /// Unix seconds, an RFC 3339 time, or a duration ago (2h, 7days).
        #[arg(long)]
        since: Option<String>,
        /// At most this many (the most recent).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Replay a session: a Postgres statement timeline, or an SSH terminal recording.
    #[command(
        after_help = "Examples:\n  jitgate replay s8f3...                     # timeline, or the SSH session played back\n  jitgate replay s8f3... --speed 4 --idle-cap 1\n  jitgate replay s8f3... --format json\n  jitgate replay s8f3... --format cast -o session.cast && asciinema play session.cast\n  jitgate replay s8f3... --channel 1 --stream input   # what was typed on channel 1"
    )]
    Replay {
        session_id: String,
        #[arg(long, value_enum, default_value = "text")]
        format: cli::replay::ReplayFormat,
        /// Playback speed for SSH recordings (2 = twice as fast).
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Longest pause, in seconds, when playing a recording back.
        #[arg(long, default_value_t = 2.0)]
        idle_cap: f64,
        /// Write to this file instead of stdout.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
        /// The SSH channel to replay (a session lists its channels when it recorded several).
        #[arg(long)]
        channel: Option<u32>,
        /// Which side of an SSH recording to show: what the user typed, what the target
        /// printed, or both (input marked).
        #[arg(long, value_enum, default_value = "both")]
        stream: cli::replay::Streams,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Check or export the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Revoke a grant at once.
    #[command(after_help = "Example:\n  jitgate revoke g7x1...")]
    Revoke {
        grant_id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Subcommand)]
enum RequestsCommand {
    /// One request whole: statement, tables, impact estimate, rule, requester, source,
    /// application, session, age, expiry, approvals so far, state.
    #[command(after_help = "Example:\n  jitgate requests show r4k2...")]
    Show {
        /// The request's id, as `jitgate requests` and the hold notice show it.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the hash chain and print `ok N events`, or the first broken link (exit 1).
    #[command(
        after_help = "Examples:\n  jitgate audit verify --data-dir /var/lib/jitgate   # offline\n  jitgate audit verify                               # through the API of a running jitgate"
    )]
    Verify {
        /// jitgate's data_dir (offline; jitgate must not be running on it).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Print every event since a time, one JSON object per line (for a SIEM).
    #[command(
        after_help = "Example:\n  jitgate audit export --since 24h --format jsonl > audit.jsonl"
    )]
    Export {
        /// Unix seconds, an RFC 3339 time, or a duration ago (24h).
        #[arg(long, default_value = "0")]
        since: String,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    Jsonl,
}

/// Read the audit store directly instead of through the API.
#[derive(clap::Args)]
struct StoreArgs {
    /// jitgate's data_dir, read directly (when jitgate is not running on it).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A config file whose data_dir to read directly.
    #[arg(long)]
    config: Option<PathBuf>,
}

impl StoreArgs {
    fn with(self, api: ApiArgs) -> cli::audit::Where {
        cli::audit::Where {
            data_dir: self.data_dir,
            config: self.config,
            api: api.client(),
        }
    }
}

#[derive(clap::Args)]
struct ApiArgs {
    /// The control API's base URL.
    #[arg(long, env = "JITGATE_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Your API bearer token.
    #[arg(long, env = "JITGATE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

impl ApiArgs {
    fn client(self) -> cli::client::ApiClient {
        cli::client::ApiClient {
            url: self.url,
            token: self.token,
            json: self.json,
        }
    }
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    jitgate::config::parse_duration(s)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => cli::serve(&config),
        Command::CheckConfig { config } => cli::check_config(&config),
        Command::Classify {
            config,
            target,
            user,
            source,
            stdin,
            input,
        } => cli::classify(&config, &target, &user, source, stdin, input.as_deref()),
        Command::HashPassword => cli::hash_password(),
        Command::Requests {
            command: Some(RequestsCommand::Show { id, api }),
            ..
        } => api.client().show(&id),
        Command::Requests {
            command: None,
            state,
            api,
        } => api.client().requests(state.as_deref()),
        Command::Approve {
            id,
            grant,
            scope,
            reason,
            api,
        } => api
            .client()
            .approve(&id, grant, scope.as_deref(), reason.as_deref()),
        Command::Deny { id, reason, api } => api.client().deny(&id, &reason),
        Command::Grants { api } => api.client().grants(),
        Command::Revoke { grant_id, api } => api.client().revoke(&grant_id),
        Command::Sessions {
            user,
            target,
            since,
            limit,
            store,
            api,
        } => cli::audit::sessions(
            store.with(api),
            cli::audit::SessionArgs {
                user,
                target,
                since,
                limit,
            },
        ),
        Command::Replay {
            session_id,
            format,
            speed,
            idle_cap,
            output,
            channel,
            stream,
            store,
            api,
        } => cli::replay::replay(
            store.with(api),
            cli::replay::ReplayArgs {
                id: session_id,
                format,
                speed,
                idle_cap,
                output,
                channel,
                streams: stream,
            },
        ),
        Command::Audit(AuditCommand::Verify { data_dir, api }) => {
            cli::audit::verify(data_dir.as_deref(), api.client())
        }
        Command::Audit(AuditCommand::Export {
            since,
            format: ExportFormat::Jsonl,
            store,
            api,
        }) => cli::audit::export(store.with(api), &since),
    }
}
