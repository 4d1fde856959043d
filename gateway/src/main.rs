//! `gatehouse`: the server binary.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gatehouse_gateway::config::{Config, DEMO, PRODUCTION_TEMPLATE};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Gatehouse: an authorization gateway that decides every request with Cedar.
#[derive(Parser)]
#[command(name = "gatehouse", version)]
#[command(
    after_help = "Without --config, the built-in demo configuration is used (run from the repository root): development mode, loopback only.\n\
Environment: GATEHOUSE_LISTEN overrides server.listen; RUST_LOG sets the log level.\n\
Exit codes: 0 clean shutdown or valid configuration, 1 invalid configuration or startup failure, 2 usage."
)]
struct Cli {
    /// The configuration file (TOML).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Load and check the configuration, the policy bundle and the entities, then exit.
    #[arg(long)]
    check_config: bool,
    /// Print a configuration template for production and exit.
    #[arg(long)]
    print_default_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Print a development HS256 token, valid for an hour, signed with development mode's
    /// secret (or `hs256_secret` with `allow_hs256`).
    DevToken {
        /// The user (the token's `sub`).
        #[arg(long)]
        user: String,
        /// The tenant claim.
        #[arg(long)]
        tenant: String,
        /// Make it an agent token: the agent acting for the user.
        #[arg(long)]
        agent: Option<String>,
        /// Mark the session as having passed MFA (`amr: ["mfa"]`).
        #[arg(long)]
        mfa: bool,
    },
    /// (Internal) Extract the text of the content on stdin, within the limits given: the
    /// search adapter's bounded child process.
    #[command(name = gatehouse_gateway::EXTRACT_COMMAND, hide = true)]
    ExtractText {
        /// The content type, the address-space limit in bytes, the CPU limit in seconds.
        #[arg(num_args = 3)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::ExtractText { args }) = &cli.command {
        return gatehouse_adapter_search::sandbox::child_main(args);
    }
    if cli.print_default_config {
        print!("{PRODUCTION_TEMPLATE}");
        return ExitCode::SUCCESS;
    }
    tracing_subscriber::fmt()
        .json()
        .with_current_span(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = match &cli.config {
        Some(path) => Config::from_file(path),
        None => Config::parse(DEMO, "built-in demo configuration"),
    };
    let config = match config {
        Ok(config) => config,
        Err(e) => return fail(&e),
    };
    if let Some(Command::DevToken {
        user,
        tenant,
        agent,
        mfa,
    }) = &cli.command
    {
        return match gatehouse_gateway::dev_token(
            &config.identity,
            &config.tenancy.tenant_claim,
            user,
            tenant,
            agent.as_deref(),
            *mfa,
        ) {
            Ok(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        };
    }
    if cli.check_config {
        return match gatehouse_gateway::check(&config) {
            Ok(bundle) => {
                println!("configuration ok: bundle {bundle}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&*e),
        };
    }
    match gatehouse_gateway::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&*e),
    }
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e:#}");
    ExitCode::FAILURE
}
