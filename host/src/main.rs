//! The `valhalla` command: parse the CLI, load the config, hand over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use valhalla::{Application, Config, app};

/// mimalloc rather than glibc's malloc: the host keeps many small cache entries alive (an
/// index of 10 000 blocklist rules is 10 000 of them), and glibc's allocator then takes its
/// slow path through fragmented bins on ordinary request allocations (`_int_malloc` went from
/// 1 % to 5 % of a server's samples with those rules; with mimalloc it is not measurable).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "valhalla",
    version,
    about = "Operations API server whose features are WebAssembly packs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
        /// Listen here instead of `server.bind`.
        #[arg(long)]
        bind: Option<String>,
    },
    /// List the enabled packs: routes, guard position, tick interval, grants.
    Packs {
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
    },
    /// Work with a configuration file.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Apply the enabled packs' migrations and exit.
    Migrate {
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
    },
    /// Write a new pack NAME: plugins/NAME/ (a crate with a GET and a POST route on the SDK),
    /// migrations/NAME/0001_init.sql, an enabled [packs.NAME] block appended to the config and
    /// plugins/NAME added to the workspace members in Cargo.toml. A name that is taken or not
    /// valid is refused and nothing is written. Guide: docs/writing-a-pack.md.
    NewPack {
        /// The pack's name: lower-case letters a-z, digits and `_`, starting with a letter, at
        /// most 32 characters, not a Rust keyword.
        name: String,
        /// The root of the Valhalla checkout to write into (it has Cargo.toml with the
        /// plugins/sdk member, and the config).
        #[arg(long, default_value = ".")]
        root: PathBuf,
        /// The config file to enable the pack in (relative to --root unless absolute).
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Validate a config file without serving: its keys and values, every enabled pack's
    /// component and manifest, the route table and the guard chain. Exits non-zero naming
    /// the first problem.
    Check {
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
    },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VALHALLA_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    // colours only for a person at a terminal, never into files or log collectors
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if std::env::var("VALHALLA_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve { config, bind } => {
            let mut config = Config::load(&config).map_err(|e| e.to_string())?;
            if let Some(bind) = bind {
                config.override_bind(bind);
                config.validate().map_err(|e| e.to_string())?;
            }
            // spans are exported (process-wide) only with `[telemetry] otlp_endpoint`
            valhalla::telemetry::init(&config.telemetry).map_err(|e| e.to_string())?;
            let app = Application::build(config)
                .await
                .map_err(|e| e.to_string())?;
            let served = app
                .run_until_stopped(shutdown_signal())
                .await
                .map_err(|e| e.to_string());
            valhalla::telemetry::shutdown().await;
            served
        }
        Command::Packs { config } => {
            let config = Config::load(&config).map_err(|e| e.to_string())?;
            let listing = app::describe_packs(&config)
                .await
                .map_err(|e| e.to_string())?;
            print!("{listing}");
            Ok(())
        }
        Command::Config {
            action: ConfigAction::Check { config: path },
        } => {
            let config = Config::load(&path).map_err(|e| e.to_string())?;
            // loads every enabled pack as `serve` would (no database connection is made)
            app::describe_packs(&config)
                .await
                .map_err(|e| e.to_string())?;
            let packs = config.enabled_packs().count();
            println!("{}: valid ({packs} packs enabled)", path.display());
            Ok(())
        }
        Command::Migrate { config } => {
            let config = Config::load(&config).map_err(|e| e.to_string())?;
            let db = app::connect(&config).await.map_err(|e| e.to_string())?;
            app::migrate(&config, &db)
                .await
                .map_err(|e| e.to_string())?;
            db.close().await;
            println!("migrations applied");
            Ok(())
        }
        Command::NewPack { name, root, config } => {
            let plan =
                valhalla::scaffold::new_pack(&root, &config, &name).map_err(|e| e.to_string())?;
            print!("{plan}");
            Ok(())
        }
    }
}

/// SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
