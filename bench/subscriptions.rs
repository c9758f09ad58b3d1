//! The subscription benchmark: how many concurrent `changes` subscribers one service process holds, how long a
//! committed change takes to reach all of them at a steady rate of mutations (fan-out latency), and how fast one
//! subscriber replays a long change log.
//!
//! ```sh
//! cargo run --release --example subscription-bench -- [--subscribers 10000] [--rate 10] [--seconds 10] \
//!     [--replay-events 100000] [--server auto|in-process|child] [--json]
//! ```
//!
//! Fan-out: the real service (`Application::build_with_store`, an editor key, a fresh SQLite store in a temporary
//! directory) on 127.0.0.1:0; `--subscribers` real WebSocket clients (`graphql-transport-ws`, the key in
//! `connection_init`) each subscribe to `changes(after: <the first logged event>)`; one warm-up mutation must reach
//! every one of them before measuring; then `createCustomer` over HTTP POST at `--rate` per second for
//! `--seconds`, open loop (one every 1/rate s whether or not the last has answered). Each delivery's receive
//! instant is compared with (1) the event's `at`, which the service stamps as the write starts (same machine, same
//! wall clock; millisecond precision), so commit and fan-out both count; (2) the instant the mutation's HTTP
//! response arrived (the service answers after the commit and after publishing the new log position, so a
//! delivery may come first: such latencies are negative, and under overload most are); (3) the instant the
//! mutation was sent; and (4) the first subscriber's receipt of the same event (the spread of the fan-out alone).
//! Every subscriber's stream is checked against the durable log read back over HTTP: nothing missing, duplicated
//! or out of order.
//!
//! Replay: a fresh store gets a start marker and then `--replay-events` change-log entries, written through
//! `GraphStore::apply` (one `CreateStakeholder` command per event, `--replay-batch` per transaction: real rows of
//! the durable log, as any mutation writes them). The service starts over it; ONE subscriber subscribes after the
//! marker's cursor and is timed until it has received every event, which are checked against the log.
//!
//! Where the service runs: each subscriber is a client socket and a server socket. `--server in-process` puts both
//! in this process (2 descriptors per subscriber); `--server child` runs the same service code in a child process
//! of this binary (one descriptor per subscriber on each side; all measuring stays in this process);
//! `auto` (the default) picks in-process when the open-file limit allows it, else child.

use anyhow::{bail, ensure, Context};
use clap::{Parser, ValueEnum};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use stakegraph::config::{ApiKeys, Config};
use stakegraph::domain::{
    Command, CustomerDetails, CustomerStatus, KindDetails, Label, MarketSet, NewStakeholder, Probability,
};
use stakegraph::service::Application;
use stakegraph::store::{GraphStore, SqliteStore};
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{watch, Semaphore};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

const EDITOR_KEY: &str = "editor-key-for-the-subscription-bench";
const SUBSCRIPTION: &str = "subscription($after: String) { changes(after: $after) { cursor kind stakeholders } }";
/// The service's largest page (`max_page_size`), used to read the log back.
const LOG_PAGE: usize = 100;
/// Open files needed besides the sockets (store files, runtime, HTTP client, standard streams), with room.
const FD_MARGIN: u64 = 256;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

#[derive(Parser)]
struct Args {
    /// Concurrent WebSocket subscribers in the fan-out run.
    #[arg(long, default_value_t = 10_000)]
    subscribers: usize,
    /// Mutations per second during the measured window.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Length of the measured window, in seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Subscribers connecting at the same time. The service listens with tokio's default backlog (128): more
    /// handshakes in flight than that overflow its accept queue, and each dropped SYN costs the client 1 s.
    #[arg(long, default_value_t = 100)]
    connect_concurrency: usize,
    /// Change-log entries the replay subscriber reads.
    #[arg(long, default_value_t = 100_000)]
    replay_events: usize,
    /// Change-log entries written per transaction when preparing the replay.
    #[arg(long, default_value_t = 5_000)]
    replay_batch: usize,
    /// Where the service runs: in this process, in a child process, or in-process when the open-file limit allows.
    #[arg(long, value_enum, default_value_t = Placement::Auto)]
    server: Placement,
    /// Give up waiting for deliveries (or handshakes) when none arrives for this many seconds.
    #[arg(long, default_value_t = 30.0)]
    stall_seconds: f64,
    /// Skip the fan-out run.
    #[arg(long)]
    skip_fan_out: bool,
    /// Skip the replay run.
    #[arg(long)]
    skip_replay: bool,
    /// Print one JSON object with every figure on stdout (the human report goes to stderr).
    #[arg(long)]
    json: bool,
    /// The mutation-latency ladder: instead of one fan-out run, one per number of subscribers in this list (e.g.
    /// `0,1000,10000`), each on a fresh service, repeated `--rounds` times (ascending in odd rounds, descending in
    /// even ones); reports each level's mutation response p50/p99 and fan-out p50/p99 per round and the ratio of
    /// each level's mutation p50 to level 0's (or the first level's) of the same round. Skips the replay run.
    #[arg(long, value_delimiter = ',')]
    levels: Option<Vec<usize>>,
    /// Rounds of the ladder.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Do not pin the service (a child process) and the clients (this process) to separate cores even when
    /// `taskset` exists and there are two cores or more.
    #[arg(long)]
    no_pin: bool,
    /// The service's `websocket.subscriber_nice` (0: subscribers' threads at the requests' priority).
    #[arg(long, default_value_t = stakegraph::ws::WsLimits::default().subscriber_nice)]
    subscriber_nice: u8,
    /// How often, in microseconds, the clients' runtime looks for received messages while measuring: its worker
    /// sleeps this long between looks instead of waiting in `epoll_wait`. On loopback the receiving side of a
    /// `send` runs in the sender's system call, on the service's core, and waking a client thread asleep in
    /// `epoll_wait` (a cross-core wake-up) is a large part of it, which a remote client would never cost the
    /// service; the delay this adds to a receive instant (at most this long) shows in the clients' lateness. 0:
    /// the runtime waits in `epoll_wait` as any tokio program does.
    #[arg(long, default_value_t = 500)]
    client_poll_us: u64,
    /// Internal: serve the database at this path and print the address (the `child` placement).
    #[arg(long, hide = true)]
    serve_child: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
enum Placement {
    Auto,
    InProcess,
    Child,
}

impl Placement {
    fn describe(self) -> &'static str {
        match self {
            Placement::Auto => "auto",
            Placement::InProcess => "in-process (clients and service share this process and its tokio runtime)",
            Placement::Child => "child process (the same service code in a child of this binary; clients here)",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Placement::Auto => "auto",
            Placement::InProcess => "in-process",
            Placement::Child => "child",
        }
    }
}

fn config(subscriber_nice: u8) -> anyhow::Result<Config> {
    Ok(Config {
        listen: "127.0.0.1:0".parse()?,
        api_keys: ApiKeys::parse(&format!("editor:{EDITOR_KEY}"))?,
        // Every subscriber uses the one key: lift the per-key caps and request rate that protect a real service.
        websocket: stakegraph::ws::WsLimits {
            max_subscriptions_per_key: usize::MAX,
            subscriber_nice,
            ..Default::default()
        },
        // ... and the connection cap, which upgraded WebSockets count against (the open-file limit still caps it).
        limits: stakegraph::api::ApiLimits {
            requests_per_second_per_key: u32::MAX / 4,
            max_connections: 1 << 20,
            ..Default::default()
        },
        ..Config::default()
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(db) = &args.serve_child {
        return serve_child(db, args.subscriber_nice);
    }
    ensure!(args.subscribers > 0 && args.rate > 0.0 && args.seconds > 0.0, "subscribers, rate and seconds must be > 0");
    ensure!(args.replay_events > 0 && args.replay_batch > 0, "replay events and batch must be > 0");
    ensure!(args.rounds > 0, "rounds must be > 0");
    ensure!(args.levels.as_ref().is_none_or(|levels| !levels.is_empty()), "--levels needs at least one level");
    // Pin before the runtime starts its threads: they inherit this thread's affinity.
    let pinning = pin(&args);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(args, pinning))
}

/// Which cores the service and the clients use, if they are pinned.
struct Pinning {
    /// The cores of the service's child process (`taskset -c` syntax).
    server: Option<String>,
    note: String,
}

/// Pins this process (the clients) to the upper half of the cores; the service's child process goes to the lower
/// half, as `overload-bench` does, so that neither takes the other's cores.
fn pin(args: &Args) -> Pinning {
    let unpinned = |note: &str| Pinning { server: None, note: note.to_owned() };
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    if args.no_pin {
        return unpinned("not pinned (--no-pin): service and clients share every core");
    }
    if cores < 2 {
        return unpinned("not pinned: one core");
    }
    if std::process::Command::new("taskset").arg("--version").output().is_err() {
        return unpinned("not pinned: `taskset` is not installed; service and clients share every core");
    }
    let half = cores / 2;
    let server = if half == 1 { "0".to_owned() } else { format!("0-{}", half - 1) };
    let clients = if half + 1 == cores { half.to_string() } else { format!("{half}-{}", cores - 1) };
    let pinned = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", &clients, &std::process::id().to_string()])
        .output()
        .is_ok_and(|output| output.status.success());
    if !pinned {
        return unpinned("not pinned: `taskset` could not pin this process");
    }
    Pinning {
        note: format!(
            "pinned with taskset: service (a child process) on core(s) {server}, clients on core(s) {clients}"
        ),
        server: Some(server),
    }
}

async fn run(args: Args, pinning: Pinning) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let limit = open_files_limit();
    // Anything else running skews every figure: say how busy the machine was before starting.
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().and_then(|load| load.parse::<f64>().ok()));
    let mut report = Report::default();
    report.line(format!(
        "machine: {cores} cores (load average {} before starting), open-file limit {} (soft), tokio \
         multi-threaded runtime ({cores} workers) in each process",
        load.map_or("unknown".to_owned(), |load| format!("{load:.2}")),
        limit.map_or("unknown".to_owned(), |limit| limit.to_string()),
    ));
    report.line(&pinning.note);
    report.line(format!(
        "service: websocket.subscriber_nice = {} (0: its WebSocket threads at the requests' priority)",
        args.subscriber_nice
    ));
    report.line(if args.client_poll_us > 0 {
        format!(
            "clients: while measuring, their runtime looks for received messages every {} µs instead of waiting in \
             epoll_wait (--client-poll-us; 0 to wait)",
            args.client_poll_us
        )
    } else {
        "clients: their runtime waits in epoll_wait (--client-poll-us 0)".to_owned()
    });
    let mut failures = Vec::new();
    let mut figures = json!({
        "machine": { "cores": cores, "open_files_limit": limit, "load_average_before": load, "pinning": pinning.note,
            "client_poll_us": args.client_poll_us,
                     "subscriber_nice": args.subscriber_nice },
    });
    let mutations = (args.rate * args.seconds).round().max(1.0) as u64;
    // A pinned service runs in a child process of its own.
    let placement = |asked: Placement, sockets: u64, requests: u64| match pinning.server {
        Some(_) => place(Placement::Child, sockets, requests, limit),
        None => place(asked, sockets, requests, limit),
    };
    if let Some(levels) = &args.levels {
        let most = levels.iter().copied().max().unwrap_or(0) as u64;
        let placement = placement(args.server, most.max(1), mutations)?;
        figures["ladder"] = ladder(&args, levels, placement, &pinning, &mut report, &mut failures).await?;
    } else {
        if !args.skip_fan_out {
            let placement = placement(args.server, args.subscribers as u64, mutations)?;
            let fan_out = fan_out(&args, args.subscribers, placement, &pinning, &mut report, &mut failures).await?;
            figures["fan_out"] = fan_out;
        }
        if !args.skip_replay {
            let placement = placement(args.server, 1, 1)?;
            let replay = replay(&args, placement, &pinning, &mut report, &mut failures).await?;
            figures["replay"] = replay;
        }
    }
    figures["ok"] = json!(failures.is_empty());
    figures["failures"] = json!(failures);
    if args.json {
        eprintln!("{}", report.text);
        println!("{}", serde_json::to_string(&figures)?);
    } else {
        println!("{}", report.text);
    }
    if !failures.is_empty() {
        bail!("the benchmark's checks failed: {}", failures.join("; "));
    }
    Ok(())
}

/// The human-readable report, also echoed as progress.
#[derive(Default)]
struct Report {
    text: String,
}

impl Report {
    fn line(&mut self, line: impl AsRef<str>) {
        self.text.push_str(line.as_ref());
        self.text.push('\n');
    }
}

fn progress(message: impl AsRef<str>) {
    eprintln!("[subscription-bench] {}", message.as_ref());
}

// ---------------------------------------------------------------------------------------------------------------
// Where the service runs.

/// The soft limit on open files of this process, from `/proc/self/limits` (Linux).
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files").split_whitespace().next()?.parse().ok()
}

/// Where a run with `sockets` subscribers and up to `requests` HTTP requests in flight (the mutations are sent open
/// loop: when the service falls behind, each waiting one holds a connection) puts the service, given the open-file
/// limit.
fn place(asked: Placement, sockets: u64, requests: u64, limit: Option<u64>) -> anyhow::Result<Placement> {
    let together = 2 * (sockets + requests) + FD_MARGIN;
    let apart = sockets + requests + FD_MARGIN;
    let Some(limit) = limit else {
        return Ok(if asked == Placement::Auto { Placement::InProcess } else { asked });
    };
    let advice = |need: u64| {
        format!(
            "{sockets} subscribers (and up to {requests} mutations in flight) need about {need} open files in one \
             process, but the limit is {limit}: raise it \
             before running (`ulimit -n {}`; the hard limit, `ulimit -Hn`, must allow it) or ask for fewer \
             subscribers",
            need.next_power_of_two()
        )
    };
    match asked {
        Placement::InProcess if limit < together => {
            bail!("{}; or run the service in a child process with --server child", advice(together))
        }
        Placement::Child if limit < apart => bail!("{}", advice(apart)),
        Placement::Auto if limit >= together => Ok(Placement::InProcess),
        Placement::Auto if limit >= apart => {
            progress(format!(
                "{sockets} subscribers (and up to {requests} mutations in flight) with the service in this process \
                 would need about {together} open files (a client and a server socket each) but the limit is \
                 {limit}: the service runs in a child process"
            ));
            Ok(Placement::Child)
        }
        Placement::Auto => bail!("{}", advice(apart)),
        other => Ok(other),
    }
}

/// A running service.
struct Server {
    address: String,
    placement: Placement,
    pid: u32,
    child: Option<(std::process::Child, std::process::ChildStdin)>,
    task: Option<tokio::task::JoinHandle<Result<(), stakegraph::service::StartupError>>>,
}

impl Server {
    /// Starts the real service over the database at `db` (created when missing).
    async fn start(placement: Placement, db: &Path, pinning: &Pinning, subscriber_nice: u8) -> anyhow::Result<Self> {
        match placement {
            Placement::Child => {
                let exe = std::env::current_exe().context("locating this benchmark's binary")?;
                // `taskset` execs the binary: the child keeps its process id.
                let mut command = match &pinning.server {
                    Some(cores) => {
                        let mut command = std::process::Command::new("taskset");
                        command.args(["-c", cores]).arg(exe);
                        command
                    }
                    None => std::process::Command::new(exe),
                };
                let mut child = command
                    .arg("--serve-child")
                    .arg(db)
                    .args(["--subscriber-nice", &subscriber_nice.to_string()])
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::inherit())
                    .spawn()
                    .context("starting the service in a child process")?;
                let stdin = child.stdin.take().context("the child's stdin")?;
                let stdout = child.stdout.take().context("the child's stdout")?;
                let line = tokio::task::spawn_blocking(move || {
                    let mut line = String::new();
                    std::io::BufReader::new(stdout).read_line(&mut line).map(|_| line)
                })
                .await??;
                let Some(address) = line.trim().strip_prefix("listening ") else {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!("the service's child process did not start (it said {line:?})");
                };
                Ok(Self {
                    address: address.to_owned(),
                    placement,
                    pid: child.id(),
                    child: Some((child, stdin)),
                    task: None,
                })
            }
            _ => {
                let store = Arc::new(SqliteStore::open(db)?);
                let application = Application::build_with_store(store, &config(subscriber_nice)?).await?;
                let address = application.local_addr().to_string();
                let task = tokio::spawn(application.run_until_stopped());
                Ok(Self {
                    address,
                    placement: Placement::InProcess,
                    pid: std::process::id(),
                    child: None,
                    task: Some(task),
                })
            }
        }
    }

    /// Stops the service: closes the child's stdin (it exits), or stops accepting in this process.
    async fn stop(self) -> anyhow::Result<()> {
        if let Some(task) = self.task {
            task.abort();
        }
        if let Some((mut child, stdin)) = self.child {
            drop(stdin);
            let waited = tokio::task::spawn_blocking(move || {
                for _ in 0..200 {
                    if let Some(status) = child.try_wait()? {
                        return Ok(status);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                child.kill()?;
                child.wait()
            })
            .await??;
            progress(format!("service child process ended: {waited}"));
        }
        Ok(())
    }
}

/// The `child` placement: serves `db` until stdin closes.
fn serve_child(db: &Path, subscriber_nice: u8) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let store = Arc::new(SqliteStore::open(db)?);
        let application = Application::build_with_store(store, &config(subscriber_nice)?).await?;
        let mut stdout = std::io::stdout();
        writeln!(stdout, "listening {}", application.local_addr())?;
        stdout.flush()?;
        std::thread::spawn(|| {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            std::process::exit(0);
        });
        application.run_until_stopped().await?;
        Ok(())
    })
}

/// CPU time and memory of a process, from `/proc` (Linux; CPU in USER_HZ = 100 ticks per second).
#[derive(Clone, Copy, Default)]
struct ProcessStats {
    /// None when `/proc/<pid>/stat` could not be read (at the open-file limit, say).
    cpu_seconds: Option<f64>,
    rss_mib: f64,
    peak_rss_mib: f64,
    threads: u64,
    open_files: u64,
    /// Time its threads spent runnable but waiting for a core (`/proc/<pid>/task/*/schedstat`, Linux with
    /// schedstats), summed over the threads alive when read: CPU taken by other processes on its cores.
    waited_seconds: Option<f64>,
}

fn process_stats(pid: u32) -> ProcessStats {
    let mut stats = ProcessStats::default();
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        if let Some((_, rest)) = stat.rsplit_once(')') {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let number = |index: usize| fields.get(index).and_then(|field| field.parse::<u64>().ok()).unwrap_or(0);
            stats.cpu_seconds = Some((number(11) + number(12)) as f64 / 100.0);
            stats.threads = number(17);
        }
    }
    if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
        let kib = |name: &str| {
            status
                .lines()
                .find(|line| line.starts_with(name))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|value| value.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        stats.rss_mib = kib("VmRSS:") / 1024.0;
        stats.peak_rss_mib = kib("VmHWM:") / 1024.0;
    }
    stats.open_files = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count() as u64);
    stats.waited_seconds = std::fs::read_dir(format!("/proc/{pid}/task")).ok().map(|tasks| {
        let waited = |task: std::fs::DirEntry| {
            let schedstat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            schedstat.split_whitespace().nth(1)?.parse::<u64>().ok()
        };
        tasks.flatten().filter_map(waited).sum::<u64>() as f64 / 1e9
    });
    stats
}

/// A `TcpExt` counter of this network namespace from `/proc/net/netstat` (Linux), e.g. `ListenOverflows`.
fn tcp_counter(name: &str) -> Option<u64> {
    let netstat = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut lines = netstat.lines().filter(|line| line.starts_with("TcpExt:"));
    let (names, values) = (lines.next()?, lines.next()?);
    let index = names.split_whitespace().position(|field| field == name)?;
    values.split_whitespace().nth(index)?.parse().ok()
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP and WebSocket clients.

async fn post(http: &reqwest::Client, base: &str, body: &Value) -> anyhow::Result<Value> {
    let response = http.post(format!("{base}/graphql")).bearer_auth(EDITOR_KEY).json(body).send().await?;
    let status = response.status();
    let value: Value = response.json().await.with_context(|| format!("HTTP {status}: not a JSON response"))?;
    if let Some(errors) = value.get("errors") {
        bail!("HTTP {status}: {errors}");
    }
    Ok(value)
}

/// Creates a customer with `key`; returns its global id.
async fn create_customer(http: &reqwest::Client, base: &str, key: &str) -> anyhow::Result<String> {
    let body = json!({
        "query": "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }",
        "variables": { "input": { "key": key, "name": format!("Customer {key}"), "power": 0.5, "interest": 0.5 } }
    });
    let response = post(http, base, &body).await?;
    response["data"]["createCustomer"]["id"].as_str().map(str::to_owned).context("createCustomer returned no id")
}

/// One entry of the durable change log, as the `changes` query shows it.
struct LogEntry {
    cursor: String,
    /// When the service stamped the change (`at`: taken as the write starts, in whole milliseconds).
    at: SystemTime,
    stakeholders: Vec<String>,
}

/// Reads the change log after `after` (from the start without it) through the `changes` query, at most `limit`.
async fn read_log(
    http: &reqwest::Client,
    base: &str,
    mut after: Option<String>,
    limit: usize,
) -> anyhow::Result<Vec<LogEntry>> {
    let query = "query($after: String, $first: Int) { changes(after: $after, first: $first) { \
                 edges { cursor node { at stakeholders } } pageInfo { hasNextPage } } }";
    let mut entries = Vec::new();
    while entries.len() < limit {
        let first = LOG_PAGE.min(limit - entries.len());
        let response =
            post(http, base, &json!({ "query": query, "variables": { "after": after, "first": first } })).await?;
        let changes = &response["data"]["changes"];
        let edges = changes["edges"].as_array().context("changes returned no edges")?;
        for edge in edges {
            let cursor = edge["cursor"].as_str().context("an edge without a cursor")?.to_owned();
            let stakeholders = edge["node"]["stakeholders"]
                .as_array()
                .context("an event without stakeholders")?
                .iter()
                .filter_map(|id| id.as_str().map(str::to_owned))
                .collect();
            let at = edge["node"]["at"].as_str().context("an event without `at`")?;
            let at = SystemTime::from(chrono::DateTime::parse_from_rfc3339(at).with_context(|| format!("`at` {at}"))?);
            entries.push(LogEntry { cursor, at, stakeholders });
        }
        if edges.is_empty() || changes["pageInfo"]["hasNextPage"] != json!(true) {
            break;
        }
        after = entries.last().map(|entry| entry.cursor.clone());
    }
    Ok(entries)
}

/// Connects to `ws://address/graphql/ws` with `graphql-transport-ws` and waits for `connection_ack`.
async fn connect(address: &str, timeout: Duration) -> anyhow::Result<Socket> {
    let mut request = format!("ws://{address}/graphql/ws").into_client_request()?;
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse()?);
    // A small read buffer: ten thousand clients at the default 128 KiB would hold 1.3 GB for frames of ~200 bytes.
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let (mut socket, _) =
        tokio::time::timeout(timeout, tokio_tungstenite::connect_async_with_config(request, Some(config), true))
            .await
            .context("the WebSocket handshake timed out")??;
    let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {EDITOR_KEY}") } });
    socket.send(Message::text(init.to_string())).await?;
    loop {
        let message = tokio::time::timeout(timeout, socket.next())
            .await
            .context("no connection_ack in time")?
            .context("the socket closed before connection_ack")??;
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text)?;
            ensure!(value["type"] == "connection_ack", "expected connection_ack, got {text}");
            return Ok(socket);
        }
    }
}

async fn subscribe(socket: &mut Socket, after: &str) -> anyhow::Result<()> {
    let start = json!({ "id": "1", "type": "subscribe", "payload": { "query": SUBSCRIPTION, "variables": { "after": after } } });
    socket.send(Message::text(start.to_string())).await?;
    Ok(())
}

/// A server message, parsed only as far as the benchmark needs.
#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    payload: Option<Payload<'a>>,
}

#[derive(Deserialize)]
struct Payload<'a> {
    #[serde(borrow)]
    data: Option<Data<'a>>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(borrow)]
    changes: Option<Event<'a>>,
}

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow)]
    cursor: Cow<'a, str>,
}

enum Received<'a> {
    Event(Cow<'a, str>),
    Ping,
    Other(String),
}

fn parse(text: &str) -> Received<'_> {
    match serde_json::from_str::<Incoming<'_>>(text) {
        Ok(Incoming { kind, payload }) if kind == "next" => {
            match payload.and_then(|payload| payload.data).and_then(|data| data.changes) {
                Some(event) => Received::Event(event.cursor),
                None => Received::Other(text.chars().take(300).collect()),
            }
        }
        Ok(Incoming { kind, .. }) if kind == "ping" => Received::Ping,
        _ => Received::Other(text.chars().take(300).collect()),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Statistics.

/// `later - earlier` in milliseconds, negative when `later` is before `earlier`.
fn signed_ms(later: Instant, earlier: Instant) -> f64 {
    match later.checked_duration_since(earlier) {
        Some(elapsed) => elapsed.as_secs_f64() * 1e3,
        None => -(earlier - later).as_secs_f64() * 1e3,
    }
}

/// Count, mean and nearest-rank percentiles of `samples` (milliseconds).
fn summary(samples: &mut [f64]) -> Value {
    if samples.is_empty() {
        return json!({ "count": 0 });
    }
    samples.sort_unstable_by(f64::total_cmp);
    let rank = |p: f64| samples[((p / 100.0 * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1];
    let round = |value: f64| (value * 1000.0).round() / 1000.0;
    json!({
        "count": samples.len(),
        "min_ms": round(samples[0]),
        "mean_ms": round(samples.iter().sum::<f64>() / samples.len() as f64),
        "p50_ms": round(rank(50.0)),
        "p90_ms": round(rank(90.0)),
        "p99_ms": round(rank(99.0)),
        "max_ms": round(samples[samples.len() - 1]),
    })
}

fn describe(summary: &Value) -> String {
    if summary["count"] == 0 {
        return "no samples".to_owned();
    }
    format!(
        "p50 {} ms, p90 {} ms, p99 {} ms, max {} ms (min {} ms, mean {} ms; {} samples)",
        summary["p50_ms"],
        summary["p90_ms"],
        summary["p99_ms"],
        summary["max_ms"],
        summary["min_ms"],
        summary["mean_ms"],
        summary["count"]
    )
}

/// Waits until `counter` reaches `target`; false when it made no progress for `stall`.
async fn wait_for(counter: &AtomicU64, target: u64, stall: Duration) -> bool {
    let mut last = counter.load(Ordering::Relaxed);
    let mut progressed = Instant::now();
    loop {
        let now = counter.load(Ordering::Relaxed);
        if now >= target {
            return true;
        }
        if now != last {
            last = now;
            progressed = Instant::now();
        } else if progressed.elapsed() > stall {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Fan-out.

/// Counters every subscriber task updates.
#[derive(Default)]
struct Progress {
    /// Events received, over all subscribers.
    delivered: AtomicU64,
    /// Subscribers that received their first event.
    ready: AtomicU64,
    /// Subscribers whose stream ended with an error.
    failed: AtomicU64,
}

/// What one subscriber received: each event's cursor and receive instant, and why it stopped early, if it did.
struct Receipts {
    events: Vec<(Box<str>, Instant)>,
    error: Option<String>,
}

async fn receive(
    mut socket: Socket,
    progress: Arc<Progress>,
    mut stop: watch::Receiver<bool>,
    capacity: usize,
) -> Receipts {
    let mut receipts = Receipts { events: Vec::with_capacity(capacity), error: None };
    loop {
        let message = tokio::select! {
            biased;
            _ = stop.changed() => break,
            message = socket.next() => message,
        };
        let at = Instant::now();
        match message {
            Some(Ok(Message::Text(text))) => match parse(&text) {
                Received::Event(cursor) => {
                    if receipts.events.is_empty() {
                        progress.ready.fetch_add(1, Ordering::Relaxed);
                    }
                    receipts.events.push((cursor.into(), at));
                    progress.delivered.fetch_add(1, Ordering::Relaxed);
                }
                Received::Ping => {
                    if let Err(error) = socket.send(Message::text(r#"{"type":"pong"}"#)).await {
                        receipts.error = Some(format!("answering a ping: {error}"));
                        break;
                    }
                }
                Received::Other(text) => {
                    receipts.error = Some(format!("unexpected message: {text}"));
                    break;
                }
            },
            Some(Ok(Message::Close(frame))) => {
                receipts.error = Some(format!("the service closed the connection: {frame:?}"));
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => {
                receipts.error = Some(format!("socket error: {error}"));
                break;
            }
            None => {
                receipts.error = Some("the connection ended".to_owned());
                break;
            }
        }
    }
    if receipts.error.is_some() {
        progress.failed.fetch_add(1, Ordering::Relaxed);
    }
    let _ = socket.close(None).await;
    receipts
}

/// Keeps this runtime's worker from waiting in `epoll_wait` until `stop`: it sleeps `micros` (a plain sleep, which
/// a `send` to one of its sockets does not have to wake), then yields, which makes the worker look for ready
/// sockets without waiting and run their tasks. See `--client-poll-us`.
async fn poll_every(micros: u64, stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        std::thread::sleep(Duration::from_micros(micros));
        tokio::task::yield_now().await;
    }
}

/// How late, in milliseconds, a task due every millisecond runs on this runtime, until `stop`.
async fn lateness(mut stop: watch::Receiver<bool>) -> Vec<f64> {
    let mut late = Vec::new();
    loop {
        let due = tokio::time::Instant::now() + Duration::from_millis(1);
        tokio::select! {
            _ = stop.changed() => return late,
            () = tokio::time::sleep_until(due) => {}
        }
        late.push(signed_ms(Instant::now(), due.into_std()));
    }
}

/// One measured mutation.
struct Mutation {
    scheduled: Instant,
    sent: Instant,
    /// The wall clock at `sent`, to place the service's `at` stamp on this process's monotonic clock.
    sent_wall: SystemTime,
    responded: Instant,
    id: anyhow::Result<String>,
}

impl Mutation {
    /// The instant (on this process's monotonic clock) of a wall-clock time near `sent`.
    fn instant_of(&self, wall: SystemTime) -> Instant {
        match wall.duration_since(self.sent_wall) {
            Ok(after) => self.sent + after,
            Err(before) => self.sent - before.duration(),
        }
    }
}

async fn fan_out(
    args: &Args,
    wanted: usize,
    placement: Placement,
    pinning: &Pinning,
    report: &mut Report,
    failures: &mut Vec<String>,
) -> anyhow::Result<Value> {
    let stall = Duration::from_secs_f64(args.stall_seconds);
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("stakegraph.db");
    let server = Server::start(placement, &db, pinning, args.subscriber_nice).await?;
    let base = format!("http://{}", server.address);
    let http = reqwest::Client::new();
    progress(format!("fan-out: service at {} ({})", server.address, server.placement.describe()));

    // A first event, so that every subscriber can start from a known cursor (no race with the warm-up).
    let genesis_id = create_customer(&http, &base, "GENESIS").await?;
    let log = read_log(&http, &base, None, 2).await?;
    ensure!(log.len() == 1 && log[0].stakeholders == [genesis_id], "the fresh log should hold only GENESIS");
    let genesis = Arc::new(log[0].cursor.clone());

    // Connect and subscribe, `connect_concurrency` at a time.
    progress(format!("fan-out: connecting {} subscribers, {} at a time", wanted, args.connect_concurrency));
    let before_connect = process_stats(server.pid);
    let overflows_before = tcp_counter("ListenOverflows");
    let gate = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let started = Instant::now();
    let handshakes: Vec<_> = (0..wanted)
        .map(|_| {
            let (gate, address, genesis) = (gate.clone(), server.address.clone(), genesis.clone());
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await?;
                let begun = Instant::now();
                let mut socket = connect(&address, stall).await?;
                subscribe(&mut socket, &genesis).await?;
                anyhow::Ok((socket, begun.elapsed()))
            })
        })
        .collect();
    let mut sockets = Vec::with_capacity(wanted);
    let mut handshake_ms = Vec::with_capacity(wanted);
    let mut connect_errors: HashMap<String, usize> = HashMap::new();
    for handshake in handshakes {
        match handshake.await? {
            Ok((socket, took)) => {
                sockets.push(socket);
                handshake_ms.push(took.as_secs_f64() * 1e3);
            }
            Err(error) => *connect_errors.entry(format!("{error:#}")).or_default() += 1,
        }
    }
    let connect_seconds = started.elapsed().as_secs_f64();
    let overflows = tcp_counter("ListenOverflows").zip(overflows_before).map(|(after, before)| after - before);
    let connected = sockets.len();
    let connect_failed = wanted - connected;
    let handshakes = summary(&mut handshake_ms);
    progress(format!(
        "fan-out: {connected} connected and subscribed in {connect_seconds:.2} s, {connect_failed} failed"
    ));
    for (error, count) in &connect_errors {
        progress(format!("fan-out: {count} × connect error: {error}"));
    }
    if connect_failed > 0 {
        failures.push(format!("{connect_failed} of {} subscribers could not connect", wanted));
    }

    let count = (args.rate * args.seconds).round().max(1.0) as usize;
    let tracker = Arc::new(Progress::default());
    let (stop, stopped) = watch::channel(false);
    let readers: Vec<_> = sockets
        .into_iter()
        .map(|socket| tokio::spawn(receive(socket, tracker.clone(), stopped.clone(), count + 1)))
        .collect();
    let poller = (args.client_poll_us > 0).then(|| tokio::spawn(poll_every(args.client_poll_us, stopped.clone())));

    // Warm-up: one mutation that every subscriber must receive, which proves every subscription is live.
    progress("fan-out: warm-up mutation");
    let (warm_sent, warm_sent_wall) = (Instant::now(), SystemTime::now());
    let warm_id = create_customer(&http, &base, "WARMUP").await?;
    let warm_responded = Instant::now();
    let warm = Mutation {
        scheduled: warm_sent,
        sent: warm_sent,
        sent_wall: warm_sent_wall,
        responded: warm_responded,
        id: Ok(warm_id.clone()),
    };
    let warmed = wait_for(&tracker.ready, connected as u64, stall).await;
    let warm_all = signed_ms(Instant::now(), warm_responded);
    let held = process_stats(server.pid);
    let clients_held = process_stats(std::process::id());
    if !warmed {
        failures.push(format!(
            "only {} of {connected} subscribers received the warm-up event",
            tracker.ready.load(Ordering::Relaxed)
        ));
    }
    progress(format!(
        "fan-out: warm-up reached {} subscribers ({warm_all:.0} ms after its response); measuring {count} mutations \
         at {}/s",
        tracker.ready.load(Ordering::Relaxed),
        args.rate
    ));

    // The measured window: open loop, one mutation every 1/rate s whether or not the previous one has answered.
    let cpu_before = (process_stats(server.pid), process_stats(std::process::id()));
    // How late the clients' runtime runs a task that is due (a timer every millisecond, on the runtime the
    // receiving tasks run on): the delay a delivery waits in this process before its receive instant is taken.
    let (probe_stop, probe_stopped) = watch::channel(false);
    let probe = tokio::spawn(lateness(probe_stopped));
    // The mutations run on a runtime of their own, on their own thread, so that their timing does not include
    // queueing behind this process's thousands of receiving tasks.
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let window = Instant::now();
    let driver_base = base.clone();
    let mutations: Vec<Mutation> = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Mutation>> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(async move {
            let http = reqwest::Client::new();
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut inflight = Vec::with_capacity(count);
            for i in 0..count {
                ticks.tick().await;
                let scheduled = window + period * i as u32;
                let (http, base) = (http.clone(), driver_base.clone());
                inflight.push(tokio::spawn(async move {
                    let (sent, sent_wall) = (Instant::now(), SystemTime::now());
                    let id = create_customer(&http, &base, &format!("BENCH-{i:06}")).await;
                    Mutation { scheduled, sent, sent_wall, responded: Instant::now(), id }
                }));
            }
            let mut mutations = Vec::with_capacity(count);
            for mutation in inflight {
                mutations.push(mutation.await?);
            }
            Ok(mutations)
        })
    })
    .await??;
    let last_sent = mutations.iter().map(|mutation| mutation.sent).max().unwrap_or(window);
    let last_response = mutations.iter().map(|mutation| mutation.responded).max().unwrap_or(window);
    // Sending spans (count - 1) periods: the rate achieved is measured between the first and the last send.
    let send_span = signed_ms(last_sent, mutations.first().map_or(window, |mutation| mutation.sent)) / 1e3;
    let achieved_rate = if count > 1 { (count - 1) as f64 / send_span.max(1e-9) } else { f64::NAN };
    let mutation_errors: Vec<String> =
        mutations.iter().filter_map(|mutation| mutation.id.as_ref().err().map(|error| format!("{error:#}"))).collect();
    if !mutation_errors.is_empty() {
        failures.push(format!("{} mutations failed, first: {}", mutation_errors.len(), mutation_errors[0]));
    }

    // Drain: wait until every subscriber has every event (or nothing more arrives).
    let expected_each = (count - mutation_errors.len()) as u64 + 1;
    let drained = wait_for(&tracker.delivered, expected_each * connected as u64, stall).await;
    let cpu_after = (process_stats(server.pid), process_stats(std::process::id()));
    let cpu_wall = window.elapsed().as_secs_f64();
    let _ = probe_stop.send(true);
    let client_lateness = summary(&mut probe.await?);
    progress(format!(
        "fan-out: {} of {} deliveries arrived{}",
        tracker.delivered.load(Ordering::Relaxed),
        expected_each * connected as u64,
        if drained { String::new() } else { format!(" (gave up after {} s without progress)", args.stall_seconds) }
    ));
    let _ = stop.send(true);
    if let Some(poller) = poller {
        poller.await?;
    }
    let mut subscribers = Vec::with_capacity(connected);
    for reader in readers {
        subscribers.push(reader.await?);
    }

    // The durable log after GENESIS: WARMUP, then the mutations in commit order.
    let log = read_log(&http, &base, Some(genesis.to_string()), usize::MAX).await?;
    server.stop().await?;
    ensure!(
        log.first().is_some_and(|entry| entry.stakeholders == [warm_id.clone()]),
        "the log should start with WARMUP"
    );
    let position: HashMap<&str, usize> = log.iter().enumerate().map(|(i, entry)| (entry.cursor.as_str(), i)).collect();
    let by_id: HashMap<&str, &Mutation> =
        mutations.iter().filter_map(|mutation| mutation.id.as_ref().ok().map(|id| (id.as_str(), mutation))).collect();
    // Per log position: the mutation's (sent, stamped by the service, responded); position 0 is the warm-up.
    let mut timing: Vec<(Instant, Instant, Instant)> = Vec::with_capacity(log.len());
    for (i, entry) in log.iter().enumerate() {
        let mutation = if i == 0 {
            &warm
        } else {
            entry
                .stakeholders
                .first()
                .and_then(|id| by_id.get(id.as_str()))
                .with_context(|| format!("log entry {i} is not one of the benchmark's mutations"))?
        };
        timing.push((mutation.sent, mutation.instant_of(entry.at), mutation.responded));
    }
    ensure!(
        log.len() as u64 == expected_each,
        "the log holds {} events after GENESIS, expected {expected_each}",
        log.len()
    );

    // First pass: the checks, and when the first and the last subscriber had each event.
    let mut first_delivery: Vec<Option<Instant>> = vec![None; log.len()];
    let mut last_delivery: Vec<Option<Instant>> = vec![None; log.len()];
    let (mut missing, mut duplicates, mut out_of_order, mut unknown) = (0u64, 0u64, 0u64, 0u64);
    let mut stream_errors: HashMap<String, usize> = HashMap::new();
    // Per subscriber: the log position of each receipt that counts (first receipt of a known event).
    let mut positions: Vec<Vec<Option<usize>>> = Vec::with_capacity(subscribers.len());
    for subscriber in &subscribers {
        if let Some(error) = &subscriber.error {
            *stream_errors.entry(error.clone()).or_default() += 1;
        }
        let mut seen = vec![false; log.len()];
        let mut furthest: Option<usize> = None;
        let mut counted = Vec::with_capacity(subscriber.events.len());
        for (cursor, at) in &subscriber.events {
            let Some(&i) = position.get(&**cursor) else {
                unknown += 1;
                counted.push(None);
                continue;
            };
            if seen[i] {
                duplicates += 1;
                counted.push(None);
                continue;
            }
            seen[i] = true;
            if furthest.is_some_and(|furthest| i < furthest) {
                out_of_order += 1;
            }
            furthest = furthest.max(Some(i));
            first_delivery[i] = Some(first_delivery[i].map_or(*at, |first| first.min(*at)));
            last_delivery[i] = last_delivery[i].max(Some(*at));
            counted.push(Some(i));
        }
        missing += seen[1..].iter().filter(|seen| !**seen).count() as u64;
        positions.push(counted);
    }
    // Second pass: the latencies of the measured events (the warm-up, position 0, is left out).
    let (mut from_stamp, mut from_response, mut from_send, mut spread) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut early = 0u64;
    for (subscriber, counted) in subscribers.iter().zip(&positions) {
        for ((_, at), i) in subscriber.events.iter().zip(counted) {
            let Some(i) = i.filter(|&i| i > 0) else { continue };
            let (sent, stamped, responded) = timing[i];
            let latency = signed_ms(*at, responded);
            if latency < 0.0 {
                early += 1;
            }
            from_stamp.push(signed_ms(*at, stamped));
            from_response.push(latency);
            from_send.push(signed_ms(*at, sent));
            if let Some(first) = first_delivery[i] {
                spread.push(signed_ms(*at, first));
            }
        }
    }
    let last_delivered = last_delivery.iter().flatten().max().copied().unwrap_or(window);
    // Per event: from its `at` to the last subscriber's receipt, and from the first receipt to the last.
    let mut to_all: Vec<f64> =
        (1..log.len()).filter_map(|i| last_delivery[i].map(|at| signed_ms(at, timing[i].1))).collect();
    let mut first_to_last: Vec<f64> = (1..log.len())
        .filter_map(|i| first_delivery[i].zip(last_delivery[i]).map(|(first, last)| signed_ms(last, first)))
        .collect();
    let mut mutation_ms: Vec<f64> =
        mutations.iter().map(|mutation| signed_ms(mutation.responded, mutation.sent)).collect();
    let mut send_lag_ms: Vec<f64> =
        mutations.iter().map(|mutation| signed_ms(mutation.sent, mutation.scheduled)).collect();
    let measured = (count - mutation_errors.len()) as u64 * connected as u64;
    for (error, count) in &stream_errors {
        progress(format!("fan-out: {count} × subscriber stream ended: {error}"));
    }
    if missing > 0 || duplicates > 0 || out_of_order > 0 || unknown > 0 {
        failures.push(format!(
            "fan-out deliveries: {missing} missing, {duplicates} duplicated, {out_of_order} out of order, {unknown} \
             not in the log"
        ));
    }
    if !stream_errors.is_empty() {
        failures.push(format!("{} subscriber streams ended early", stream_errors.values().sum::<usize>()));
    }

    let from_stamp = summary(&mut from_stamp);
    let from_response = summary(&mut from_response);
    let from_send = summary(&mut from_send);
    let spread = summary(&mut spread);
    let to_all = summary(&mut to_all);
    let first_to_last = summary(&mut first_to_last);
    let mutation_latency = summary(&mut mutation_ms);
    let send_lag = summary(&mut send_lag_ms);
    let cpu = |after: ProcessStats, before: ProcessStats| {
        after.cpu_seconds.zip(before.cpu_seconds).map(|(after, before)| after - before)
    };
    let (server_cpu, client_cpu) = (cpu(cpu_after.0, cpu_before.0), cpu(cpu_after.1, cpu_before.1));
    let waited = |after: ProcessStats, before: ProcessStats| {
        after.waited_seconds.zip(before.waited_seconds).map(|(after, before)| (after - before).max(0.0))
    };
    let (server_waited, client_waited) = (waited(cpu_after.0, cpu_before.0), waited(cpu_after.1, cpu_before.1));
    let seconds = |cpu: Option<f64>| cpu.map_or("unknown (/proc unreadable)".to_owned(), |cpu| format!("{cpu:.1} s"));
    let offered = args.rate * connected as f64;
    let delivered_rate = measured as f64 / (signed_ms(last_delivered, window) / 1e3).max(1e-9);
    let after_last_send = signed_ms(last_delivered, last_sent) / 1e3;
    let response_after_last_send = signed_ms(last_response, last_sent) / 1e3;

    report.line("");
    report.line(format!(
        "== Fan-out: {connected} concurrent `changes` subscribers on one service process, {} mutations/s for {} s",
        args.rate, args.seconds
    ));
    report.line(format!("service: {}", placement.describe()));
    report.line(format!(
        "connect: {connected} of {} subscribed (WebSocket + connection_init/ack + subscribe) in {connect_seconds:.2} s, \
         {} at a time; handshake {}",
        wanted,
        args.connect_concurrency,
        describe(&handshakes)
    ));
    if let Some(overflows) = overflows {
        report.line(format!(
            "  connection attempts dropped by a full accept queue meanwhile (ListenOverflows, this network \
             namespace): {overflows}{}",
            if overflows > 0 { "; each cost its client a SYN retransmit (1 s or more)" } else { "" }
        ));
    }
    report.line(format!(
        "holding them, the service process has {} open files, {} threads, RSS {:.0} MiB (peak {:.0} MiB; {:.0} MiB \
         before connecting){}",
        held.open_files,
        held.threads,
        held.rss_mib,
        held.peak_rss_mib,
        before_connect.rss_mib,
        if placement == Placement::InProcess { " — clients included" } else { "" }
    ));
    if placement == Placement::Child {
        report.line(format!(
            "the client process (this one) has {} open files, RSS {:.0} MiB",
            clients_held.open_files, clients_held.rss_mib
        ));
    }
    report.line(format!(
        "warm-up: one mutation reached all {connected} subscribers {warm_all:.0} ms after its response{}",
        if warmed { "" } else { " (NOT all: see failures)" }
    ));
    report.line(format!(
        "mutations: {count} createCustomer over HTTP, sent open loop at {achieved_rate:.1}/s (send lag behind \
         schedule p99 {} ms), {} failed; the last response came {response_after_last_send:.2} s after the last send; \
         response time {}",
        send_lag["p99_ms"],
        mutation_errors.len(),
        describe(&mutation_latency)
    ));
    report.line(format!(
        "deliveries: {} measured ({connected} per event): {missing} missing, {duplicates} duplicated, {out_of_order} \
         out of order, {unknown} not in the log; {delivered_rate:.0} deliveries/s on average against {offered:.0}/s \
         offered; the last one {after_last_send:.2} s after the last mutation was sent",
        from_response["count"],
    ));
    report.line(format!(
        "fan-out latency, receive − the event's `at` (stamped by the service as the write starts, so commit \
         included; `at` has millisecond precision): {}",
        describe(&from_stamp)
    ));
    report.line(format!(
        "fan-out latency, receive − the mutation's HTTP response: {} ({early} deliveries arrived before the \
         response)",
        describe(&from_response)
    ));
    report.line(format!("fan-out latency, receive − mutation sent: {}", describe(&from_send)));
    report.line(format!("spread, receive − the first subscriber's receipt of the same event: {}", describe(&spread)));
    report
        .line(format!("time until the LAST subscriber had an event, from its `at`, per event: {}", describe(&to_all)));
    report.line(format!("first to last subscriber's receipt, per event: {}", describe(&first_to_last)));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    report.line(if placement == Placement::InProcess {
        format!(
            "CPU from the first mutation until every delivery arrived: {} (service and clients \
             together, one process) over {cpu_wall:.1} s wall on {cores} cores",
            seconds(server_cpu)
        )
    } else {
        format!(
            "CPU from the first mutation until every delivery arrived: service {}, clients {}, over {cpu_wall:.1} s \
             wall on {cores} cores",
            seconds(server_cpu),
            seconds(client_cpu)
        )
    });
    report.line(format!(
        "waiting for a core meanwhile (runnable, not running; other processes on its cores): service {}, clients {}",
        seconds(server_waited),
        seconds(client_waited)
    ));
    report.line(format!(
        "clients' runtime lateness (a task due every 1 ms on the receivers' runtime, run this late; includes the \
         timer's 1 ms granularity): {}",
        describe(&client_lateness)
    ));
    report.line(
        "note: receive instants are taken by the client tasks, which share the machine's cores with the service, \
         so they include the clients' own scheduling delay (the lateness above)",
    );
    if placement == Placement::InProcess {
        report.line("note: client and service share one process and one tokio runtime");
    }

    Ok(json!({
        "placement": placement.name(),
        "subscribers": wanted,
        "connected": connected,
        "connect_failed": connect_failed,
        "connect_errors": connect_errors,
        "connect_concurrency": args.connect_concurrency,
        "connect_seconds": connect_seconds,
        "handshake": handshakes,
        "service_process": {
            "open_files": held.open_files, "threads": held.threads, "rss_mib": held.rss_mib,
            "peak_rss_mib": held.peak_rss_mib, "rss_mib_before_connecting": before_connect.rss_mib,
            "includes_clients": placement == Placement::InProcess,
        },
        "warm_up": { "all_received": warmed, "ms_after_response": warm_all },
        "rate": args.rate,
        "seconds": args.seconds,
        "mutations": count,
        "mutations_failed": mutation_errors.len(),
        "achieved_rate": achieved_rate,
        "last_response_after_last_send_seconds": response_after_last_send,
        "send_lag": send_lag,
        "mutation_response": mutation_latency,
        "deliveries": {
            "measured": from_response["count"], "expected": measured, "missing": missing, "duplicated": duplicates,
            "out_of_order": out_of_order, "unknown": unknown, "before_response": early,
            "stream_errors": stream_errors, "drained": drained,
            "last_after_last_send_seconds": after_last_send,
            "per_second": delivered_rate, "offered_per_second": offered,
        },
        "latency_from_stamp": from_stamp,
        "latency_from_response": from_response,
        "latency_from_send": from_send,
        "spread_from_first_receipt": spread,
        "first_to_last_receipt_per_event": first_to_last,
        "latency_to_last_subscriber": to_all,
        "listen_overflows_while_connecting": overflows,
        "client_process": { "open_files": clients_held.open_files, "rss_mib": clients_held.rss_mib },
        "client_lateness": client_lateness,
        "cpu_seconds": {
            "service": server_cpu, "clients": client_cpu, "wall": cpu_wall,
            "service_waited": server_waited, "clients_waited": client_waited,
            "same_process": placement == Placement::InProcess,
        },
    }))
}

// ---------------------------------------------------------------------------------------------------------------
// The mutation-latency ladder.

/// One fan-out run per level and round, each on a fresh service; the summary compares each level's mutation
/// response time with level 0's (the first level's) in the same round, and shows every round, not only the best.
async fn ladder(
    args: &Args,
    levels: &[usize],
    placement: Placement,
    pinning: &Pinning,
    report: &mut Report,
    failures: &mut Vec<String>,
) -> anyhow::Result<Value> {
    // runs[round][level index] = the fan-out figures of that run.
    let mut runs: Vec<Vec<Value>> = Vec::with_capacity(args.rounds);
    for round in 0..args.rounds {
        let mut order: Vec<usize> = (0..levels.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        let mut figures = vec![Value::Null; levels.len()];
        for index in order {
            progress(format!("ladder: round {} of {}, {} subscribers", round + 1, args.rounds, levels[index]));
            figures[index] = fan_out(args, levels[index], placement, pinning, report, failures).await?;
        }
        runs.push(figures);
    }
    let p = |figures: &Value, what: &str, rank: &str| figures[what][rank].as_f64().unwrap_or(f64::NAN);
    let median = |mut values: Vec<f64>| {
        values.sort_unstable_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let list = |values: &[f64], digits: usize| {
        values.iter().map(|value| format!("{value:.digits$}")).collect::<Vec<_>>().join(" / ")
    };
    report.line("");
    report.line(format!(
        "== Ladder: mutation response time by number of `changes` subscribers ({} mutations/s for {} s per run, a \
         fresh service per run, {} rounds, levels ascending in odd rounds and descending in even ones)",
        args.rate, args.seconds, args.rounds
    ));
    report.line(
        "per level: each round's figure (round 1 / round 2 / …) and the median over rounds; ratio = mutation p50 ÷ \
         the first level's mutation p50 in the same round",
    );
    let mut summary = Vec::with_capacity(levels.len());
    for (index, level) in levels.iter().enumerate() {
        let column = |what: &str, rank: &str| runs.iter().map(|run| p(&run[index], what, rank)).collect::<Vec<_>>();
        let (mutation_p50, mutation_p99) =
            (column("mutation_response", "p50_ms"), column("mutation_response", "p99_ms"));
        let (fan_out_p50, fan_out_p99) =
            (column("latency_from_stamp", "p50_ms"), column("latency_from_stamp", "p99_ms"));
        let ratio: Vec<f64> = runs
            .iter()
            .map(|run| p(&run[index], "mutation_response", "p50_ms") / p(&run[0], "mutation_response", "p50_ms"))
            .collect();
        let (waited, late) = (column("cpu_seconds", "service_waited"), column("client_lateness", "p99_ms"));
        report.line(format!(
            "{level:>6} subscribers: mutation p50 {} ms (median {:.2}), p99 {} ms (median {:.2}); ratio {} (median \
             {:.2}); fan-out p50 {} ms, p99 {} ms; service waited for a core {} s; clients' lateness p99 {} ms",
            list(&mutation_p50, 2),
            median(mutation_p50.clone()),
            list(&mutation_p99, 2),
            median(mutation_p99.clone()),
            list(&ratio, 2),
            median(ratio.clone()),
            if *level == 0 { "-".to_owned() } else { list(&fan_out_p50, 1) },
            if *level == 0 { "-".to_owned() } else { list(&fan_out_p99, 1) },
            list(&waited, 2),
            list(&late, 1),
        ));
        summary.push(json!({
            "subscribers": level,
            "mutation_p50_ms": mutation_p50, "mutation_p99_ms": mutation_p99, "ratio_p50": ratio,
            "fan_out_p50_ms": fan_out_p50, "fan_out_p99_ms": fan_out_p99,
            "service_waited_seconds": waited, "client_lateness_p99_ms": late,
            "median": {
                "mutation_p50_ms": median(mutation_p50.clone()), "mutation_p99_ms": median(mutation_p99.clone()),
                "ratio_p50": median(ratio.clone()),
                "fan_out_p50_ms": median(fan_out_p50.clone()), "fan_out_p99_ms": median(fan_out_p99.clone()),
            },
        }));
    }
    Ok(json!({ "levels": summary, "rounds": args.rounds, "runs": runs }))
}

// ---------------------------------------------------------------------------------------------------------------
// Replay.

fn new_customer(key: &str) -> anyhow::Result<Command> {
    Ok(Command::CreateStakeholder(NewStakeholder {
        key: Label::parse(key)?,
        name: Label::parse(&format!("Customer {key}"))?,
        power: Probability::parse(0.5)?,
        interest: Probability::parse(0.5)?,
        private: false,
        extra_markets: MarketSet::EMPTY,
        details: KindDetails::Customer(CustomerDetails {
            status: CustomerStatus::Active,
            segment: None,
            lifetime_value: None,
            exit: None,
            perceived_value: None,
            since: None,
            lifecycle: Vec::new(),
            memberships: Vec::new(),
            retention_cost: None,
        }),
    }))
}

async fn replay(
    args: &Args,
    placement: Placement,
    pinning: &Pinning,
    report: &mut Report,
    failures: &mut Vec<String>,
) -> anyhow::Result<Value> {
    let n = args.replay_events;
    let stall = Duration::from_secs_f64(args.stall_seconds);
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("stakegraph.db");

    // The log: a start marker, then `n` events, each a real row written by `GraphStore::apply` with its change.
    progress(format!("replay: writing {n} change-log entries, {} per transaction", args.replay_batch));
    let written = Instant::now();
    {
        let store = SqliteStore::open(&db)?;
        store.apply(vec![new_customer("REPLAY-START")?], chrono::Utc::now()).await?;
        let mut next = 0;
        while next < n {
            let end = (next + args.replay_batch).min(n);
            let commands = (next..end).map(|i| new_customer(&format!("REPLAY-{i:07}"))).collect::<Result<_, _>>()?;
            let applied = store.apply(commands, chrono::Utc::now()).await?;
            ensure!(
                applied.events.len() == end - next,
                "a batch of {} commands wrote {} events",
                end - next,
                applied.events.len()
            );
            next = end;
        }
        let counts = store.counts().await?;
        ensure!(counts.changes == n as u64 + 1, "the log holds {} entries, expected {}", counts.changes, n + 1);
    }
    let write_seconds = written.elapsed().as_secs_f64();

    let starting = Instant::now();
    let server = Server::start(placement, &db, pinning, args.subscriber_nice).await?;
    let start_seconds = starting.elapsed().as_secs_f64();
    let base = format!("http://{}", server.address);
    let http = reqwest::Client::new();
    progress(format!(
        "replay: service at {} ({}), started in {start_seconds:.2} s",
        server.address,
        server.placement.describe()
    ));
    let marker = read_log(&http, &base, None, 1).await?;
    let marker = marker.first().context("the log is empty")?.cursor.clone();

    let mut socket = connect(&server.address, stall).await?;
    let mut cursors: Vec<Box<str>> = Vec::with_capacity(n);
    let begun = Instant::now();
    subscribe(&mut socket, &marker).await?;
    let mut first_event = None;
    let mut error = None;
    while cursors.len() < n {
        let message = match tokio::time::timeout(stall, socket.next()).await {
            Err(_) => {
                error = Some(format!("nothing for {} s", args.stall_seconds));
                break;
            }
            Ok(None) => {
                error = Some("the connection ended".to_owned());
                break;
            }
            Ok(Some(Err(socket_error))) => {
                error = Some(format!("socket error: {socket_error}"));
                break;
            }
            Ok(Some(Ok(message))) => message,
        };
        let Message::Text(text) = message else { continue };
        match parse(&text) {
            Received::Event(cursor) => {
                first_event.get_or_insert_with(|| begun.elapsed());
                cursors.push(cursor.into());
            }
            Received::Ping => socket.send(Message::text(r#"{"type":"pong"}"#)).await?,
            Received::Other(text) => {
                error = Some(format!("unexpected message: {text}"));
                break;
            }
        }
    }
    let replay_seconds = begun.elapsed().as_secs_f64();
    let _ = socket.close(None).await;
    let replayed = cursors.len();
    let rate = replayed as f64 / replay_seconds;
    progress(format!("replay: {replayed} events in {replay_seconds:.2} s; checking them against the log"));

    // The log read back over HTTP, page by page: the subscriber must have had exactly these, in this order.
    let checked = Instant::now();
    let log = read_log(&http, &base, Some(marker), usize::MAX).await?;
    let check_seconds = checked.elapsed().as_secs_f64();
    server.stop().await?;
    let differing = log.iter().zip(&cursors).filter(|(entry, cursor)| entry.cursor.as_str() != &***cursor).count();
    let exact = log.len() == n && replayed == n && differing == 0;
    if let Some(error) = &error {
        failures.push(format!("replay stopped early: {error}"));
    }
    if !exact {
        failures.push(format!(
            "replay: {replayed} events received, the log holds {}, {differing} differ in position",
            log.len()
        ));
    }

    report.line("");
    report.line(format!("== Replay: one subscriber reads {n} logged events"));
    report.line(format!("service: {}", placement.describe()));
    report.line(format!(
        "log: {} entries (a start marker + {n} STAKEHOLDER_CREATED events, one CreateStakeholder command each) \
         written through GraphStore::apply, {} per transaction, in {write_seconds:.2} s; service started over it in \
         {start_seconds:.2} s",
        n + 1,
        args.replay_batch
    ));
    report.line(format!(
        "replay: {replayed} events in {replay_seconds:.2} s = {rate:.0} events/s (first event after {:.1} ms)",
        first_event.map_or(f64::NAN, |first| first.as_secs_f64() * 1e3)
    ));
    report.line(format!(
        "check: {} (the {} cursors of the log, read back over HTTP in {check_seconds:.1} s, against the {replayed} \
         received: {differing} differ)",
        if exact { "exact, in log order, none missing or repeated" } else { "FAILED" },
        log.len()
    ));

    Ok(json!({
        "placement": placement.name(),
        "events": n,
        "write_seconds": write_seconds,
        "write_batch": args.replay_batch,
        "service_start_seconds": start_seconds,
        "received": replayed,
        "seconds": replay_seconds,
        "events_per_second": rate,
        "first_event_ms": first_event.map(|first| first.as_secs_f64() * 1e3),
        "exact": exact,
        "differing": differing,
        "error": error,
    }))
}
