//! The `jitgate` command line. Every subcommand is a thin call into the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use jitgate::cli;

#[derive(Parser)]
#[command(name = "jitgate", version, about = "Just-in-time approval proxy for PostgreSQL and SSH")]
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
    #[command(after_help = "Examples:\n  jitgate classify --config jitgate.toml --target app-db --user alice 'DELETE FROM t'\n  jq -R . queries.sql | jitgate classify --config jitgate.toml --target app-db --user alice --stdin")]
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
    }
}
