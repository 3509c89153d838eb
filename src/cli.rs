//! The command line: `serve`, `migrate`, `token create|list|revoke`,
//! `deliveries list|show|redeliver`. Every command takes the
//! same `--config/--data-dir/--database-url` options, so one invocation style fits all.

mod deliveries;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::admin::issue_token;
use crate::config::{Overrides, Settings};
use crate::domain::scope::Scopes;
use crate::domain::tenant::TenantSlug;
use crate::startup::{shutdown_signal, Application};
use crate::store;
use crate::timefmt::{now_ms, rfc3339_ms};

/// Herald: outgoing webhooks for project-tracking data.
#[derive(Debug, Parser)]
#[command(name = "herald", version, about)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct GlobalArgs {
    /// TOML settings file.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (SQLite file, master key). Default ./herald-data.
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Database URL: sqlite:PATH or postgres://… (default: SQLite in the data directory).
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the API server and the delivery workers.
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8080.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Inspect the delivery log and redeliver (bulk replay shows a progress bar).
    #[command(subcommand)]
    Deliveries(deliveries::DeliveriesCommand),
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token (and its tenant and user when missing); prints the token last.
    Create {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// User account id the token acts as.
        #[arg(long)]
        user: String,
        /// Comma-separated scopes: webhooks:read, webhooks:write, entities:write,
        /// events:write, deliveries:write, admin.
        #[arg(long)]
        scopes: String,
        /// Label to recognise the token by.
        #[arg(long, default_value = "cli token")]
        name: String,
    },
    /// List tokens (never their secrets).
    List {
        /// Only this tenant's tokens.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revoke a token by id.
    Revoke {
        /// Token id (the part after `hrld_`, as `token list` shows).
        id: String,
    },
}

impl Cli {
    /// Runs the parsed command.
    pub async fn run(self) -> anyhow::Result<()> {
        let listen = match &self.command {
            Command::Serve { listen } => listen.clone(),
            _ => None,
        };
        let overrides = Overrides {
            config_file: self.global.config,
            data_dir: self.global.data_dir,
            database_url: self.global.database_url,
            listen,
        };
        let settings = Settings::load(&overrides)?;
        crate::telemetry::init(settings.log_format);
        match self.command {
            Command::Serve { .. } => serve(settings).await,
            Command::Migrate => {
                let s = open_store(&settings, Missing::Create).await?;
                println!("database is up to date ({})", s.backend());
                Ok(())
            }
            Command::Token(t) => token(settings, t).await,
            Command::Deliveries(d) => {
                let store = open_store(&settings, Missing::Refuse).await?;
                deliveries::run(store.as_ref(), d).await
            }
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let public = settings.public_base_url.clone();
    let app = Application::build(settings).await?;
    println!(
        "Herald {} listening on {}",
        env!("CARGO_PKG_VERSION"),
        app.base_url()
    );
    if let Some(t) = app.bootstrap_token() {
        println!("First start: created tenant `default` with an admin token. It is shown only once:");
        println!();
        println!("    {}", t.token);
        println!();
    }
    println!("API docs:     {public}/docs  (OpenAPI: {public}/openapi.json)");
    println!("Admin UI:     {public}/admin");
    println!("Webhooks API: {public}/@default/v1/Webhooks");
    let stop = CancellationToken::new();
    let trigger = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested");
        trigger.cancel();
    });
    app.run_until_stopped(stop).await
}

/// What a command does when its SQLite database does not exist yet.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Missing {
    /// Create it (and say so on stderr): `migrate`, `token create` (a database can be
    /// provisioned before its first `serve`).
    Create,
    /// Stop with an error: commands that read or change what is there.
    Refuse,
}

/// The store a command other than `serve` works on. Why the check: SQLite creates a
/// missing file, and the default path is relative to the current directory, so a command
/// run from another directory than the server's worked on a new, empty database —
/// `deliveries replay` queued nothing and said so successfully, `token list` listed
/// nothing, a token created there was refused by the server.
async fn open_store(
    settings: &Settings,
    missing: Missing,
) -> anyhow::Result<std::sync::Arc<dyn store::Store>> {
    if let crate::config::DatabaseConfig::Sqlite { path } = &settings.database {
        if !path.exists() {
            match missing {
                Missing::Refuse => anyhow::bail!(
                    "no Herald database at {}: run this where `herald serve` runs, or pass --data-dir (or --database-url)",
                    path.display()
                ),
                Missing::Create => eprintln!(
                    "note: no Herald database at {}; creating a new one (to use an existing one, run this where `herald serve` runs, or pass --data-dir)",
                    path.display()
                ),
            }
        }
    }
    Ok(store::connect(&settings.database).await?)
}

async fn token(settings: Settings, cmd: TokenCommand) -> anyhow::Result<()> {
    let missing = if matches!(cmd, TokenCommand::Create { .. }) {
        Missing::Create
    } else {
        Missing::Refuse
    };
    let store = open_store(&settings, missing).await?;
    match cmd {
        TokenCommand::Create {
            tenant,
            user,
            scopes,
            name,
        } => {
            let tenant = TenantSlug::parse(&tenant)
                .map_err(anyhow::Error::msg)
                .context("--tenant")?;
            let scopes = Scopes::parse(&scopes)
                .map_err(anyhow::Error::msg)
                .context("--scopes")?;
            if user.trim().is_empty() || user.len() > 128 {
                anyhow::bail!("--user must be 1-128 characters");
            }
            let t = issue_token(store.as_ref(), &tenant, user.trim(), &scopes, &name).await?;
            println!(
                "Created token {} for {user} in tenant {tenant} with scopes {scopes}.",
                t.id
            );
            println!("It is shown only once:");
            println!("{}", t.token);
        }
        TokenCommand::List { tenant } => {
            let tenant_id = match tenant {
                Some(slug) => Some(
                    store
                        .tenant_by_slug(&slug)
                        .await?
                        .with_context(|| format!("no tenant `{slug}`"))?
                        .id,
                ),
                None => None,
            };
            println!(
                "{:<14} {:<12} {:<16} {:<24} {:<10} NAME",
                "ID", "TENANT", "USER", "CREATED", "STATE"
            );
            for t in store.list_tokens(tenant_id).await? {
                println!(
                    "{:<14} {:<12} {:<16} {:<24} {:<10} {} [{}]",
                    t.id,
                    t.tenant_slug,
                    t.user.account_id,
                    rfc3339_ms(t.created_at),
                    if t.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    },
                    t.name,
                    t.scopes
                );
            }
        }
        TokenCommand::Revoke { id } => {
            if store.revoke_token(&id, now_ms()).await? {
                println!("Revoked token {id}.");
            } else {
                anyhow::bail!("no active token with id {id}");
            }
        }
    }
    Ok(())
}
