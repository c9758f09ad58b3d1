//! The `stakegraph` command: serve the GraphQL API, write a demo graph, print the schema.

use anyhow::Context;
use clap::{Parser, Subcommand};
use stakegraph::config::{Config, Overrides, StoreKind};
use stakegraph::demo::{self, DemoOptions};
use stakegraph::service::Application;
use stakegraph::store::{GraphStore, SqliteStore};
use stakegraph::traces::Traces;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;

/// mimalloc: a GraphQL response is thousands of small, short-lived allocations made and freed across threads,
/// where glibc's allocator spent a quarter of the serving time (bench/serving.py under perf).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// Stakegraph: a GraphQL gateway over a six-market stakeholder relationship graph.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines are written to stderr: `text` for people, `json` (one object per line) for log collectors.
    #[arg(long, global = true, env = "STAKEGRAPH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// The log's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve GraphQL at /graphql (GraphiQL at /), with /healthz and /readyz.
    Serve {
        /// Address to listen on [default: 127.0.0.1:8080, or STAKEGRAPH_LISTEN].
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// The embedded database file [default: ./data/stakegraph.db, or STAKEGRAPH_DB].
        #[arg(long)]
        db: Option<PathBuf>,
        /// Seed a demo graph into an empty database; on a loopback address, let callers without a key read.
        #[arg(long)]
        demo: bool,
        /// A TOML configuration file (listen, db, api_keys, demo_size, store, trusted_documents, [limits], [neo4j],
        /// [falkordb], [webhooks]).
        #[arg(long, env = "STAKEGRAPH_CONFIG")]
        config: Option<PathBuf>,
        /// Run only the documents of this manifest (`{"<sha256>": "<document>"}`, as `stakegraph trusted-documents`
        /// writes it) [or STAKEGRAPH_TRUSTED_DOCUMENTS]; every other request is refused.
        #[arg(long)]
        trusted_documents: Option<PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Write a deterministic demo graph into a new database.
    Demo {
        /// How many stakeholders.
        #[arg(long, default_value_t = 10_000)]
        size: usize,
        /// The database file to create; it must not hold stakeholders yet.
        #[arg(long, default_value = stakegraph::config::DEFAULT_DB)]
        db: PathBuf,
        /// Seed of the generator: the same seed, size and anchor date give the same graph.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// The demo's "today" (YYYY-MM-DD); interactions fall in the two years before it [default: today].
        #[arg(long)]
        anchor: Option<chrono::NaiveDate>,
        /// Top the business network up with acquaintances until it has at least this many relationships
        /// (e.g. 1000000 for a 100000-stakeholder benchmark graph).
        #[arg(long)]
        relationships: Option<usize>,
    },
    /// Write the projected graph (what the analyses run on) for other tools: `nodes.csv` and `edges.csv` (ids and
    /// strengths), or `graph.graphml` / `graph.gexf` with names and attributes (Gephi, Cytoscape, networkx).
    ExportGraph {
        /// The database file [default: ./data/stakegraph.db, or STAKEGRAPH_DB, or the config file's].
        #[arg(long)]
        db: Option<PathBuf>,
        /// A TOML configuration file: its [strength] model scores the relationships.
        #[arg(long, env = "STAKEGRAPH_CONFIG")]
        config: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
        format: ExportFormat,
        /// Write private stakeholders (and their relationships) into a GraphML or GEXF file too; without it they
        /// are left out, since those files carry names. (CSV always lists them, flagged: it holds ids only.)
        #[arg(long)]
        include_private: bool,
        /// The directory to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Evaluate strengths as of this time (RFC 3339, e.g. 2026-06-01T00:00:00Z) [default: now].
        #[arg(long)]
        as_of: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Import stakeholders, relationships and interactions by key from CSV files (with a header) or JSON Lines (.jsonl), all or
    /// nothing: every problem is reported as file:line:column before anything is written; running it again
    /// changes nothing. Columns: see `src/import.rs` or the README.
    Import {
        /// The database file [default: ./data/stakegraph.db, or STAKEGRAPH_DB, or the config file's].
        #[arg(long)]
        db: Option<PathBuf>,
        /// A TOML configuration file: its [strength] model keeps the decayed sums.
        #[arg(long, env = "STAKEGRAPH_CONFIG")]
        config: Option<PathBuf>,
        /// A file of stakeholders (repeatable).
        #[arg(long = "stakeholders", value_name = "FILE")]
        stakeholders: Vec<PathBuf>,
        /// A file of relationships, their ends by key (repeatable).
        #[arg(long = "relationships", value_name = "FILE")]
        relationships: Vec<PathBuf>,
        /// A file of interactions, each with its own key, their relationships by their ends' keys and type
        /// (repeatable).
        #[arg(long = "interactions", value_name = "FILE")]
        interactions: Vec<PathBuf>,
        /// A file of relationship-marketing programmes, by key (repeatable).
        #[arg(long = "programs", value_name = "FILE")]
        programs: Vec<PathBuf>,
        /// A file of customers' programme memberships, by the customer's and the programme's keys (repeatable).
        #[arg(long = "memberships", value_name = "FILE")]
        memberships: Vec<PathBuf>,
        /// A file of customers' exits and win-backs (`customer_key,event,date,reason`), in date order per customer
        /// (repeatable).
        #[arg(long = "lifecycle", value_name = "FILE")]
        lifecycle: Vec<PathBuf>,
        /// Check everything and report what would be written; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Commit every N rows instead of all at once. Rows are upserted by key, so after an interruption the same
        /// command resumes where it stopped: the rows already committed are found as they are and neither written
        /// nor logged again.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        batch: Option<u64>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Write the stakeholders, customers' exits and win-backs, programmes, relationships, interactions and
    /// memberships as CSV files in exactly the formats `import` reads (stakeholders.csv, lifecycle.csv, programs.csv,
    /// relationships.csv, interactions.csv, memberships.csv): importing them into an empty database gives the same
    /// graph and strengths. Archived stakeholders and customers' perceived values are not in the formats and not
    /// written.
    Export {
        /// The database file [default: ./data/stakegraph.db, or STAKEGRAPH_DB, or the config file's].
        #[arg(long)]
        db: Option<PathBuf>,
        /// A TOML configuration file.
        #[arg(long, env = "STAKEGRAPH_CONFIG")]
        config: Option<PathBuf>,
        /// The directory to write the files into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Also write private stakeholders and what joins them (left out by default).
        #[arg(long)]
        include_private: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Copy a whole embedded store (change log included) into Neo4j, resuming where an interrupted copy stopped,
    /// and compare the counts at the end.
    Migrate {
        /// The store to copy: sqlite:PATH.
        #[arg(long)]
        from: String,
        /// Where to: neo4j:URI (bolt://host:7687, neo4j+s://… for Aura), or falkordb:URL (falkor://host:6379, for
        /// trying things out; not a supported production backend).
        #[arg(long)]
        to: String,
        #[command(flatten)]
        neo4j: Neo4jArgs,
        /// The FalkorDB graph to copy into.
        #[arg(long, default_value = "stakegraph")]
        graph: String,
        /// A TOML configuration file: its [strength] model is the one the copied decayed sums follow.
        #[arg(long, env = "STAKEGRAPH_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Print the GraphQL schema (SDL).
    Schema {
        /// Print it as an Apollo Federation v2 subgraph's SDL (what `_service { sdl }` answers), for a router's
        /// supergraph composition (`rover supergraph compose`).
        #[arg(long)]
        federation: bool,
    },
    /// Print a trusted-documents manifest (`{"<sha256>": "<document>"}`, the format Relay and GraphQL Codegen write)
    /// of every `.graphql` file in a directory, for `serve --trusted-documents`.
    TrustedDocuments {
        /// The directory of operations.
        #[arg(long, default_value = "queries")]
        dir: PathBuf,
    },
}

/// Which store a command works on (as `serve` chooses it).
#[derive(clap::Args)]
struct StoreArgs {
    /// Where the graph lives: the embedded SQLite file, Neo4j or FalkorDB [default: sqlite, or STAKEGRAPH_STORE].
    #[arg(long, value_enum)]
    store: Option<StoreKind>,
    /// The Neo4j server (bolt://host:7687, neo4j+s://… for Aura) [or NEO4J_URI].
    #[arg(long)]
    neo4j_uri: Option<String>,
    #[command(flatten)]
    neo4j: Neo4jArgs,
    /// The FalkorDB server (falkor://host:6379) [or FALKORDB_URL, which is where a URL with a password belongs].
    #[arg(long)]
    falkordb_url: Option<String>,
    /// The FalkorDB graph [default: stakegraph, or FALKORDB_GRAPH].
    #[arg(long)]
    falkordb_graph: Option<String>,
}

impl StoreArgs {
    /// The configuration overrides these arguments make, with `db`.
    fn overrides(self, db: Option<PathBuf>) -> Overrides {
        let Neo4jArgs { neo4j_user, neo4j_database, neo4j_password_file } = self.neo4j;
        Overrides {
            db,
            store: self.store,
            neo4j_uri: self.neo4j_uri,
            neo4j_user,
            neo4j_database,
            neo4j_password_file,
            falkordb_url: self.falkordb_url,
            falkordb_graph: self.falkordb_graph,
            ..Overrides::default()
        }
    }
}

/// How to log in to Neo4j (the password comes from NEO4J_PASSWORD or a file, never from the command line).
#[derive(clap::Args)]
struct Neo4jArgs {
    /// The Neo4j user [default: neo4j, or NEO4J_USER].
    #[arg(long)]
    neo4j_user: Option<String>,
    /// The Neo4j database [default: neo4j, or NEO4J_DATABASE].
    #[arg(long)]
    neo4j_database: Option<String>,
    /// A file holding the Neo4j password [or NEO4J_PASSWORD_FILE]; NEO4J_PASSWORD is read first.
    #[arg(long)]
    neo4j_password_file: Option<PathBuf>,
}

/// Formats of `export-graph`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum ExportFormat {
    /// `nodes.csv` (index,id,kind,markets,private) and `edges.csv` (source,target,relationship_id,type,strength).
    Csv,
    /// `graph.graphml`: nodes with key, name, kind, markets, power, interest, private (and a customer's status,
    /// segment, lifetime value); edges with relationship id, type, level, bonds, trust, commitment, since, strength.
    Graphml,
    /// `graph.gexf` (GEXF 1.2): the same attributes; strength also as each edge's weight.
    Gexf,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let traces = match Traces::from_env() {
        Ok(traces) => traces,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // The spans made for traces are the exporter's, never log lines, whatever RUST_LOG says.
    let filter = match "stakegraph::trace=off".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    let log = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let log = match cli.log_format {
        LogFormat::Text => log.with_ansi(std::io::stderr().is_terminal()).boxed(),
        LogFormat::Json => log.json().flatten_event(true).with_current_span(false).with_span_list(false).boxed(),
    };
    tracing_subscriber::registry()
        .with(log.with_filter(filter))
        .with(traces.as_ref().map(|traces| traces.layer()))
        .init();
    if traces.is_some() {
        tracing::info!("exporting traces over OTLP (OTEL_EXPORTER_OTLP_ENDPOINT)");
    }
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line, whatever the log filter: what went wrong and, from the error itself, how to fix it.
            eprintln!("error: {}", one_line(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each cause once (an error often already quotes its source).
fn one_line(error: &anyhow::Error) -> String {
    let mut line = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line = format!("{line}: {cause}");
        }
    }
    line
}

/// Runs one command.
async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { listen, db, demo, config, trusted_documents, store } => {
            let overrides = Overrides { listen, demo, trusted_documents, ..store.overrides(db) };
            let config = Config::load(config.as_deref(), &stakegraph::config::environment(), overrides)?;
            config.check_serving()?;
            match (&config.neo4j, &config.falkordb) {
                (Some(neo4j), _) => {
                    tracing::info!(?neo4j, demo = config.demo, keys = ?config.api_keys, "starting on Neo4j")
                }
                (None, Some(falkordb)) => {
                    tracing::info!(?falkordb, demo = config.demo, keys = ?config.api_keys, "starting on FalkorDB")
                }
                (None, None) => {
                    tracing::info!(db = %config.db_path.display(), demo = config.demo, keys = ?config.api_keys, "starting")
                }
            }
            let application = Application::build(&config).await?;
            if config.anonymous_reads() {
                tracing::info!(url = %format!("http://{}/", application.local_addr()), "demo: anonymous reads allowed; open GraphiQL");
            }
            application.run_until_stopped().await?;
        }
        Command::ExportGraph { db, config, format, out, as_of, include_private } => {
            let overrides = Overrides { db, ..Overrides::default() };
            let config = Config::load(config.as_deref(), &stakegraph::config::environment(), overrides)?;
            let db = config.db_path;
            if !db.exists() {
                anyhow::bail!("{} does not exist; pass --db with the database to export", db.display());
            }
            let store = SqliteStore::open_with(&db, config.strength.clone())?;
            let scan = store.graph_scan().await?;
            store.checkpoint().await?;
            let model = std::sync::Arc::new(config.strength);
            let snapshot = stakegraph::engine::Snapshot::build(&scan, model, as_of.unwrap_or_else(chrono::Utc::now))?;
            use stakegraph::engine::export::{write_csv, write_markup, Markup};
            let markup = match format {
                ExportFormat::Csv => {
                    let written = write_csv(&snapshot, &out)
                        .with_context(|| format!("writing the export into {}", out.display()))?;
                    println!("{}", serde_json::to_string_pretty(&written)?);
                    return Ok(());
                }
                ExportFormat::Graphml => Markup::GraphMl,
                ExportFormat::Gexf => Markup::Gexf,
            };
            let ids: Vec<stakegraph::domain::StakeholderId> = scan.stakeholders.iter().map(|node| node.id).collect();
            let mut stakeholders = Vec::with_capacity(ids.len());
            for chunk in ids.chunks(10_000) {
                stakeholders.extend(store.stakeholders_by_id(chunk).await?);
            }
            let written = write_markup(&snapshot, &stakeholders, &scan.relationships, include_private, markup, &out)
                .with_context(|| format!("writing the export into {}", out.display()))?;
            println!("{}", serde_json::to_string_pretty(&written)?);
        }
        Command::Export { db, config, out, include_private, store } => {
            let overrides = store.overrides(db);
            let config = Config::load(config.as_deref(), &stakegraph::config::environment(), overrides)?;
            if config.store == StoreKind::Sqlite && !config.db_path.exists() {
                anyhow::bail!("{} does not exist; pass --db with the database to export", config.db_path.display());
            }
            let store = stakegraph::service::open_store(&config).await?;
            let exported = stakegraph::export::run(store.as_ref(), &out, include_private).await?;
            println!("{}", serde_json::to_string_pretty(&exported)?);
        }
        Command::Import {
            db,
            config,
            stakeholders,
            relationships,
            interactions,
            programs,
            memberships,
            lifecycle,
            dry_run,
            batch,
            store,
        } => {
            without_huge_pages();
            let overrides = store.overrides(db);
            let config = Config::load(config.as_deref(), &stakegraph::config::environment(), overrides)?;
            let inputs = stakegraph::import::Inputs {
                stakeholders,
                relationships,
                interactions,
                programs,
                memberships,
                lifecycle,
            };
            if inputs.is_empty() {
                anyhow::bail!(
                    "nothing to import; pass --stakeholders, --relationships, --interactions, --programs, \
                     --memberships and/or --lifecycle with a FILE"
                );
            }
            let store = stakegraph::service::open_store(&config).await?;
            let batch = batch.map(|rows| usize::try_from(rows).unwrap_or(usize::MAX));
            import(store.as_ref(), inputs, stakegraph::import::Options { dry_run, batch }).await?;
            store.checkpoint().await?;
        }
        Command::Demo { size, db, seed, anchor, relationships } => {
            let store = SqliteStore::open(&db)?;
            let anchor = match anchor {
                Some(date) => date.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc(),
                None => chrono::Utc::now(),
            };
            let options = DemoOptions { seed, relationships, ..DemoOptions::new(size, anchor) };
            let started = std::time::Instant::now();
            let summary = demo::generate(&store, &options, &|progress| {
                tracing::info!(phase = progress.phase, done = progress.done, total = progress.total, "demo");
            })
            .await?;
            // The `.db` file alone then holds the whole graph (nothing left in the write-ahead log).
            store.checkpoint().await?;
            let counts = store.counts().await?;
            println!(
                "wrote {} stakeholders, {} relationships, {} interactions ({} change events) to {} in {:.1} s",
                summary.stakeholders,
                summary.relationships,
                summary.interactions,
                counts.changes,
                db.display(),
                started.elapsed().as_secs_f64()
            );
        }
        Command::Migrate {
            from,
            to,
            neo4j: Neo4jArgs { neo4j_user, neo4j_database, neo4j_password_file },
            graph,
            config,
        } => {
            let neo4j_uri = to.strip_prefix("neo4j:").map(str::to_owned);
            let overrides = Overrides {
                store: Some(if neo4j_uri.is_some() { StoreKind::Neo4j } else { StoreKind::Sqlite }),
                neo4j_uri,
                neo4j_user,
                neo4j_database,
                neo4j_password_file,
                ..Overrides::default()
            };
            let config = Config::load(config.as_deref(), &stakegraph::config::environment(), overrides)?;
            migrate(&from, &to, &graph, config).await?;
        }
        Command::Schema { federation: false } => print!("{}", stakegraph::api::sdl()),
        Command::Schema { federation: true } => print!("{}", stakegraph::api::federation_sdl()),
        Command::TrustedDocuments { dir } => {
            let manifest = stakegraph::api::persisted::manifest_of(&dir)?;
            println!("{}", serde_json::to_string_pretty(&manifest)?);
        }
    }
    Ok(())
}

/// `stakegraph migrate`: opens both ends, copies with a progress bar, and reports the counts.
async fn migrate(from: &str, to: &str, graph: &str, config: Config) -> anyhow::Result<()> {
    use indicatif::{ProgressBar, ProgressStyle};
    use stakegraph::migrate::{self, ChunkSizes, Phase};
    use stakegraph::store::cypher::CypherConnection;
    use stakegraph::store::CypherStore;
    use std::sync::Arc;

    let Some(path) = from.strip_prefix("sqlite:") else {
        anyhow::bail!(
            "--from '{from}' is not a store to copy from; write sqlite:PATH, e.g. sqlite:./data/stakegraph.db"
        );
    };
    let path = PathBuf::from(path);
    if !path.exists() {
        anyhow::bail!("--from: {} does not exist", path.display());
    }
    let source = SqliteStore::open_with(&path, config.strength.clone())?;
    let connection: Arc<dyn CypherConnection> = if let Some(settings) = &config.neo4j {
        Arc::new(stakegraph::store::neo4j::Neo4jConnection::connect(settings)?)
    } else if let Some(url) = to.strip_prefix("falkordb:") {
        Arc::new(stakegraph::store::falkor::FalkorConnection::connect(url, graph).await?)
    } else {
        anyhow::bail!("--to '{to}' is not a store to copy into; write neo4j:URI (e.g. neo4j:bolt://localhost:7687) or falkordb:URL");
    };
    let described = connection.describe();
    // Copies write large statements: give each a minute.
    let target = CypherStore::new(connection, config.strength.clone(), std::time::Duration::from_secs(60));
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>14} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let started = std::time::Instant::now();
    let current = std::sync::Mutex::new(None::<Phase>);
    let name = format!("sqlite:{}", path.canonicalize().unwrap_or_else(|_| path.clone()).display());
    let migrated = migrate::migrate(&source, &name, &target, ChunkSizes::default(), &|progress| {
        let mut current = current.lock().expect("progress lock");
        if *current != Some(progress.phase) {
            *current = Some(progress.phase);
            bar.reset();
            bar.set_prefix(progress.phase.name());
            bar.set_length(progress.total);
        }
        bar.set_position(progress.done);
    })
    .await
    .with_context(|| format!("copying {} into {described}; run the same command again to resume", path.display()))?;
    bar.finish_and_clear();
    // Opening the source may have brought its schema or decayed sums up to date: fold that into its file.
    source.checkpoint().await?;
    let counts = migrated.counts;
    println!(
        "{} {} into {described}: {} stakeholders, {} relationships, {} interactions, {} change events; \
         the counts of both stores match ({:.1} s)",
        if migrated.already_complete { "already copied" } else { "copied" },
        path.display(),
        counts.stakeholders,
        counts.relationships,
        counts.interactions,
        counts.changes,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Stops this process from backing its memory with transparent huge pages. An import allocates a few gigabytes
/// once, briefly; with huge pages the kernel zeroes a whole 2 MiB page at each first touch (and again after the
/// allocator returns memory), which took a third or more of a 1.4-million-row import (44-49 s against 24-30 s
/// without, `bench/import.py` and `perf`). Only the import's own process: the service keeps its default.
fn without_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integer arguments and touches no memory of this process.
    let refused = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } != 0;
    #[cfg(target_os = "linux")]
    if refused {
        tracing::debug!("the kernel refused to disable transparent huge pages; the import may be slower");
    }
}

/// Runs an import into `store`: checks every file, then writes everything in one transaction (or every `batch`
/// rows; with `dry_run`, nothing); prints a JSON report on stdout, progress and every problem on stderr.
async fn import(
    store: &dyn stakegraph::store::GraphStore,
    inputs: stakegraph::import::Inputs,
    options: stakegraph::import::Options,
) -> anyhow::Result<()> {
    use stakegraph::import::{ImportError, Step};
    // A bar on a terminal; a line at most every second otherwise.
    let terminal = std::io::stderr().is_terminal();
    let bar = indicatif::ProgressBar::hidden();
    let mut last_line = std::time::Instant::now();
    let progress = |step: Step<'_>| match step {
        Step::Reading { files } => eprintln!("reading {files} file(s)"),
        Step::Checking { files } => eprintln!("checking {files} file(s)"),
        Step::Writing { rows, what } => {
            eprintln!("{what}");
            if terminal {
                bar.set_length(rows as u64);
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "importing [{bar:40}] {pos}/{len} rows ({per_sec}, {eta} left)",
                    )
                    .expect("a valid template")
                    .progress_chars("=> "),
                );
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            }
        }
        Step::Wrote { done, rows } => {
            bar.set_position(done as u64);
            if !terminal && (last_line.elapsed() >= std::time::Duration::from_secs(1) || done == rows) {
                eprintln!("imported {done} of {rows} rows");
                last_line = std::time::Instant::now();
            }
        }
    };
    let report = stakegraph::import::run(store, &inputs, options, progress).await;
    bar.finish_and_clear();
    match report {
        Ok(report) => {
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Err(ImportError::Problems(problems)) => {
            for problem in &problems {
                eprintln!("{problem}");
            }
            anyhow::bail!("{} problem(s) found; nothing was written", problems.len())
        }
        Err(error) => Err(error.into()),
    }
}
