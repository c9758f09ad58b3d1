//! The overload benchmark: does admission control keep the service responsive while clients pile analyses on it?
//!
//! ```sh
//! cargo build --release --bin stakegraph --example overload-bench
//! target/release/examples/overload-bench [--size 100000] [--seconds 10] [--rounds 3] [--clients 8] [--json]
//! ```
//!
//! It starts the release binary (`target/release/stakegraph`, next to this example; `--binary` for another) as
//! `stakegraph serve` over the `--size`-stakeholder demo (`target/bench-data/overload-<size>.db`, written once with
//! `stakegraph demo` when missing), with API keys in `STAKEGRAPH_API_KEYS`: one viewer key per load client, one for
//! the probe, one per burst request, and an editor key for the writer. When `taskset` exists the server is pinned to
//! the first half of the cores and this load generator to the other half (so the server sees fewer cores: its
//! default `max_concurrent_analyses` is the cores it may use). Then, interleaved for `--rounds` rounds:
//!
//! - **unloaded**: a probe sends a simple `node(id)` query every `--probe-every-ms` (closed loop) for `--seconds`;
//! - **loaded**: the same probe while `--clients` clients loop over analyses (influencePaths, influenceReach,
//!   keyInfluencers, brokers, keyPersonRisk with varying arguments) as fast as they can, a writer records an
//!   interaction on an existing relationship as an editor every `--write-every-ms`, and a poller reads `/healthz`
//!   every 50 ms.
//!
//! It reports the probe's p50/p99 in each phase and the ratio loaded p99 ÷ unloaded p99 (target ≤ 2), the writes'
//! successes and latency, `/healthz`'s slowest answer (target ≤ 50 ms), and the analyses that completed and that were
//! refused (HTTP 429, `LIMIT_EXCEEDED`, by limit). Then a burst of `--burst` analyses sent at once (each with its own
//! key): how many ran and how many were refused with a code, a limit and `Retry-After` (the target: past the pool
//! and its queue, coded refusals). The server's RSS is read from `/proc/<pid>/status` before, during (highest) and
//! after. First of all, `--subscriptions` `strengthCrossed` subscriptions watching every relationship are opened over
//! `--subscription-connections` WebSockets and held: the server's RSS before them, while they are held (once it
//! settles) and after their connections closed, twice (the second time reuses what the first freed).

use anyhow::{bail, ensure, Context};
use clap::Parser;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PROBE_KEY: &str = "overload-bench-probe";
const EDITOR_KEY: &str = "overload-bench-editor";

#[derive(Parser)]
struct Args {
    /// Stakeholders in the demo graph (100000 for the figures; 3000 for a quick check).
    #[arg(long, default_value_t = 100_000)]
    size: usize,
    /// The `stakegraph` binary [default: `stakegraph` next to this example's directory, i.e. target/<profile>/].
    #[arg(long)]
    binary: Option<PathBuf>,
    /// The database [default: target/bench-data/overload-<size>.db, written with `stakegraph demo` if missing].
    #[arg(long)]
    db: Option<PathBuf>,
    /// Length of each phase, in seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Unloaded/loaded rounds, interleaved.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Clients looping over analyses in the loaded phases.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// The probe's pace: one `node(id)` query every this many milliseconds (closed loop).
    #[arg(long, default_value_t = 10)]
    probe_every_ms: u64,
    /// The writer's pace in the loaded phases.
    #[arg(long, default_value_t = 100)]
    write_every_ms: u64,
    /// Analyses sent at once in the burst.
    #[arg(long, default_value_t = 100)]
    burst: usize,
    /// `strengthCrossed` subscriptions watching every relationship, held open at the end to read their memory.
    #[arg(long, default_value_t = 200)]
    subscriptions: usize,
    /// WebSocket connections the subscriptions are spread over (each takes at most 100).
    #[arg(long, default_value_t = 4)]
    subscription_connections: usize,
    /// Analysis clients that are refused wait for the `Retry-After` the server sent (well-behaved clients) instead
    /// of sending the next analysis at once (a flood of refusals).
    #[arg(long)]
    honor_retry_after: bool,
    /// Do not pin the server and the load generator to separate cores even when `taskset` exists.
    #[arg(long)]
    no_pin: bool,
    /// Print one JSON object with every figure on stdout (the human report goes to stderr).
    #[arg(long)]
    json: bool,
}

fn progress(message: impl AsRef<str>) {
    eprintln!("[overload-bench] {}", message.as_ref());
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.seconds > 0.0 && args.rounds > 0 && args.clients > 0 && args.burst > 0, "every count must be > 0");
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    // Pin before the runtime starts its threads: they inherit this thread's affinity.
    let pinning = pin(&args, cores);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(args, cores, pinning))
}

/// Which cores the server and the load generator use, if they are pinned.
struct Pinning {
    server: Option<String>,
    note: String,
}

fn pin(args: &Args, cores: usize) -> Pinning {
    let unpinned = |note: String| Pinning { server: None, note };
    if args.no_pin {
        return unpinned("not pinned (--no-pin): server and load generator share every core".into());
    }
    if cores < 2 {
        return unpinned("not pinned: one core".into());
    }
    if Command::new("taskset").arg("--version").output().is_err() {
        return unpinned("not pinned: `taskset` is not installed; server and load generator share every core".into());
    }
    let half = cores / 2;
    let server = if half == 1 { "0".to_owned() } else { format!("0-{}", half - 1) };
    let generator = if half + 1 == cores { half.to_string() } else { format!("{half}-{}", cores - 1) };
    let pinned = Command::new("taskset")
        .args(["-a", "-p", "-c", &generator, &std::process::id().to_string()])
        .output()
        .is_ok_and(|output| output.status.success());
    if !pinned {
        return unpinned("not pinned: `taskset` could not pin this process".into());
    }
    Pinning {
        note: format!(
            "pinned with taskset: server on core(s) {server}, load generator on core(s) {generator} (the server's \
             default max_concurrent_analyses follows the {half} core(s) it may use)"
        ),
        server: Some(server),
    }
}

/// The running server.
struct Server {
    child: Child,
    pid: u32,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("VmRSS:"))?.to_owned();
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn binary(args: &Args) -> anyhow::Result<PathBuf> {
    if let Some(binary) = &args.binary {
        return Ok(binary.clone());
    }
    // target/<profile>/examples/overload-bench → target/<profile>/stakegraph
    let exe = std::env::current_exe()?;
    let profile_dir = exe.parent().and_then(Path::parent).context("this example's directory")?;
    let binary = profile_dir.join("stakegraph");
    ensure!(
        binary.is_file(),
        "{} is missing: build it with `cargo build --release --bin stakegraph --example overload-bench`, or pass \
         --binary",
        binary.display()
    );
    Ok(binary)
}

fn database(args: &Args, binary: &Path) -> anyhow::Result<PathBuf> {
    let db = args.db.clone().unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data").join(format!("overload-{}.db", args.size))
    });
    if db.exists() {
        progress(format!("using {}", db.display()));
        return Ok(db);
    }
    if let Some(dir) = db.parent() {
        std::fs::create_dir_all(dir)?;
    }
    progress(format!("writing the {}-stakeholder demo into {} (once)", args.size, db.display()));
    let started = Instant::now();
    let status = Command::new(binary)
        .args(["demo", "--size", &args.size.to_string(), "--db"])
        .arg(&db)
        .env("RUST_LOG", "warn")
        .status()
        .context("running `stakegraph demo`")?;
    if !status.success() {
        let _ = std::fs::remove_file(&db);
        bail!("`stakegraph demo` failed ({status})");
    }
    progress(format!("demo written in {:.0} s", started.elapsed().as_secs_f64()));
    Ok(db)
}

fn keys(args: &Args) -> String {
    let mut keys = vec![format!("viewer:{PROBE_KEY}"), format!("editor:{EDITOR_KEY}")];
    keys.extend((0..args.clients).map(|n| format!("viewer:{}", client_key(n))));
    keys.extend((0..args.burst).map(|n| format!("viewer:{}", burst_key(n))));
    keys.join(",")
}

fn client_key(n: usize) -> String {
    format!("overload-bench-client-{n}")
}

fn burst_key(n: usize) -> String {
    format!("overload-bench-burst-{n}")
}

fn start(binary: &Path, db: &Path, args: &Args, pinning: &Pinning) -> anyhow::Result<Server> {
    let mut command = match &pinning.server {
        Some(cores) => {
            let mut command = Command::new("taskset");
            command.args(["-c", cores]).arg(binary);
            command
        }
        None => Command::new(binary),
    };
    let mut child = command
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(db)
        .env("STAKEGRAPH_API_KEYS", keys(args))
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .context("starting `stakegraph serve`")?;
    let mut lines = BufReader::new(child.stderr.take().context("stderr")?).lines();
    let address = loop {
        let Some(line) = lines.next() else {
            bail!("`stakegraph serve` exited before it listened: {:?}", child.wait());
        };
        let line = line?;
        if let Some(start) = line.find("address=") {
            break line[start + "address=".len()..].split_whitespace().next().unwrap_or_default().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let pid = child.id();
    Ok(Server { child, pid, base: format!("http://{address}") })
}

/// Waits until `/readyz` answers 200: the service serves at once and builds the projection in the background, which
/// the measurements must not overlap.
async fn ready(client: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let status = client.get(format!("{base}/readyz")).send().await?.status();
        if status == reqwest::StatusCode::OK {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "/readyz still answers {status} after 300 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Latencies of one kind of request.
#[derive(Default, Clone)]
struct Latencies(Vec<Duration>);

impl Latencies {
    fn quantile(&self, q: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        sorted[((sorted.len() - 1) as f64 * q).round() as usize]
    }

    fn max(&self) -> Duration {
        self.0.iter().copied().max().unwrap_or_default()
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// Ids of the demo graph the load uses.
struct Known {
    stakeholders: Vec<String>,
    employees: Vec<String>,
    relationship: String,
}

async fn discover(client: &reqwest::Client, base: &str) -> anyhow::Result<Known> {
    let query = r#"{ all: stakeholders(first: 100) { nodes { id } }
        more: stakeholders(first: 100, orderBy: {field: NAME}) { nodes { id } }
        staff: stakeholders(first: 100, filter: {kinds: [EMPLOYEE]}) { nodes { id ... on Employee { candidate } } }
        customers: stakeholders(first: 1, filter: {kinds: [CUSTOMER]}) { nodes { relationships(first: 1) { nodes { id } } } } }"#;
    let response: Value = client
        .post(format!("{base}/graphql"))
        .bearer_auth(EDITOR_KEY)
        .json(&json!({ "query": query }))
        .send()
        .await?
        .json()
        .await?;
    ensure!(response.get("errors").is_none(), "discovering ids failed: {response}");
    let ids = |value: &Value| -> Vec<String> {
        value.as_array().into_iter().flatten().filter_map(|node| node["id"].as_str().map(str::to_owned)).collect()
    };
    let data = &response["data"];
    let mut stakeholders = ids(&data["all"]["nodes"]);
    stakeholders.extend(ids(&data["more"]["nodes"]));
    // Staff only: keyPersonRisk refuses candidates.
    let staff: Vec<Value> = data["staff"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|node| node["candidate"] != true)
        .cloned()
        .collect();
    let employees = ids(&Value::Array(staff));
    let relationship = data["customers"]["nodes"][0]["relationships"]["nodes"][0]["id"]
        .as_str()
        .context("a customer with a relationship")?
        .to_owned();
    ensure!(!stakeholders.is_empty() && !employees.is_empty(), "the demo graph has stakeholders and employees");
    Ok(Known { stakeholders, employees, relationship })
}

/// One analysis request, varied by `rng`.
fn analysis(rng: &mut ChaCha8Rng, known: &Known) -> String {
    let any = |rng: &mut ChaCha8Rng| known.stakeholders.choose(rng).cloned().unwrap_or_default();
    let strength = rng.gen_range(1..=30) as f64 / 100.0;
    match rng.gen_range(0..5) {
        0 => format!(
            "{{ influencePaths(from: \"{}\", to: \"{}\", first: {}, maxHops: {}, minStrength: {strength}) {{ paths {{ score }} }} }}",
            any(rng),
            any(rng),
            rng.gen_range(1..=5),
            rng.gen_range(2..=5)
        ),
        1 => format!(
            "{{ influenceReach(from: \"{}\", maxHops: {}, minScore: 0.0{}, first: 20) {{ reached {{ score hops }} }} }}",
            any(rng),
            rng.gen_range(2..=4),
            rng.gen_range(1..=9)
        ),
        2 => {
            let market = ["CUSTOMER", "REFERRAL", "SUPPLIER", "INFLUENCE"].choose(rng).copied().unwrap_or("CUSTOMER");
            format!("{{ keyInfluencers(market: {market}, first: {}, minStrength: {strength}) {{ ranked {{ score }} }} }}", rng.gen_range(5..=20))
        }
        3 => format!("{{ brokers(first: {}, minStrength: {strength}) {{ ranked {{ score }} }} }}", rng.gen_range(5..=20)),
        _ => format!(
            "{{ keyPersonRisk(employee: \"{}\", first: 10) {{ affected totalLoss }} }}",
            known.employees.choose(rng).cloned().unwrap_or_default()
        ),
    }
}

/// How one GraphQL request ended.
enum Outcome {
    Ok,
    /// 429 with `LIMIT_EXCEEDED`; the limit, whether `Retry-After` and `retryAfter` came with it, and the wait.
    Refused {
        limit: String,
        retry_after: bool,
        wait: Option<u64>,
    },
    /// Anything else: status and first error.
    Failed(String),
}

async fn graphql(client: &reqwest::Client, base: &str, key: &str, body: &Value) -> Outcome {
    let response = match client.post(format!("{base}/graphql")).bearer_auth(key).json(body).send().await {
        Ok(response) => response,
        Err(error) => return Outcome::Failed(format!("transport: {error}")),
    };
    let status = response.status();
    let wait = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok()?.trim().parse::<u64>().ok());
    let retry_after = wait.is_some();
    let body: Value = match response.json().await {
        Ok(body) => body,
        Err(error) => return Outcome::Failed(format!("{status}: not JSON ({error})")),
    };
    let error = &body["errors"][0];
    if error.is_null() && status.is_success() {
        return Outcome::Ok;
    }
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS && error["extensions"]["code"] == "LIMIT_EXCEEDED" {
        let limit = error["extensions"]["limit"].as_str().unwrap_or("(none named)").to_owned();
        let retry_after = retry_after && !error["extensions"]["retryAfter"].is_null();
        return Outcome::Refused { limit, retry_after, wait };
    }
    let code = error["extensions"]["code"].as_str().unwrap_or("(no code)");
    let limit = error["extensions"]["limit"].as_str().map(|limit| format!(" {limit}")).unwrap_or_default();
    let message: String = error["message"].as_str().unwrap_or_default().chars().take(90).collect();
    Outcome::Failed(format!("{} {code}{limit}: {message}", status.as_u16()))
}

/// What one phase measured.
#[derive(Default)]
struct Phase {
    probe: Latencies,
    probe_failures: u64,
    analyses_ok: u64,
    analyses_refused: BTreeMap<String, u64>,
    analyses_failed: BTreeMap<String, u64>,
    analysis_ok_latency: Latencies,
    writes_ok: u64,
    writes_failed: BTreeMap<String, u64>,
    writes: Latencies,
    healthz: Latencies,
    healthz_failures: u64,
    rss_max: f64,
}

async fn phase(args: &Args, server: &Server, known: &Arc<Known>, loaded: bool, round: usize) -> Phase {
    let until = Instant::now() + Duration::from_secs_f64(args.seconds);
    let stop = Arc::new(AtomicBool::new(false));
    let result = Arc::new(Mutex::new(Phase::default()));
    let base = server.base.clone();
    let mut tasks = Vec::new();

    // The probe: its own client (connection), paced.
    {
        let (base, known, result) = (base.clone(), known.clone(), result.clone());
        let every = Duration::from_millis(args.probe_every_ms);
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
            let mut rng = ChaCha8Rng::seed_from_u64(round as u64);
            let mut next = Instant::now();
            while Instant::now() < until {
                let id = known.stakeholders.choose(&mut rng).cloned().unwrap_or_default();
                let body = json!({ "query": "query($id: ID!) { node(id: $id) { id ... on Stakeholder { name kind } } }", "variables": { "id": id } });
                let started = Instant::now();
                let outcome = graphql(&client, &base, PROBE_KEY, &body).await;
                let took = started.elapsed();
                {
                    let mut result = result.lock().unwrap();
                    match outcome {
                        Outcome::Ok => result.probe.0.push(took),
                        _ => result.probe_failures += 1,
                    }
                }
                next += every;
                tokio::time::sleep_until(next.max(Instant::now()).into()).await;
            }
        }));
    }
    if loaded {
        let stop_analyses = stop.clone();
        for n in 0..args.clients {
            let (base, known, result, stop) = (base.clone(), known.clone(), result.clone(), stop_analyses.clone());
            let honor_retry_after = args.honor_retry_after;
            tasks.push(tokio::spawn(async move {
                let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
                let mut rng = ChaCha8Rng::seed_from_u64(1_000 * round as u64 + n as u64);
                let key = client_key(n);
                while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                    let body = json!({ "query": analysis(&mut rng, &known) });
                    let started = Instant::now();
                    let outcome = graphql(&client, &base, &key, &body).await;
                    let took = started.elapsed();
                    let pause = match &outcome {
                        Outcome::Refused { wait: Some(seconds), .. } if honor_retry_after => {
                            Some(Duration::from_secs(*seconds))
                        }
                        _ => None,
                    };
                    {
                        let mut result = result.lock().unwrap();
                        match outcome {
                            Outcome::Ok => {
                                result.analyses_ok += 1;
                                result.analysis_ok_latency.0.push(took);
                            }
                            Outcome::Refused { limit, .. } => *result.analyses_refused.entry(limit).or_default() += 1,
                            Outcome::Failed(what) => *result.analyses_failed.entry(what).or_default() += 1,
                        }
                    }
                    if let Some(pause) = pause {
                        tokio::time::sleep(pause.min(until.saturating_duration_since(Instant::now()))).await;
                    }
                }
            }));
        }
        // The writer: one interaction on an existing relationship every `write_every_ms`, as the editor.
        {
            let (base, known, result) = (base.clone(), known.clone(), result.clone());
            let every = Duration::from_millis(args.write_every_ms);
            tasks.push(tokio::spawn(async move {
                let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
                let mutation =
                    "mutation($input: RecordInteractionsInput!) { recordInteractions(input: $input) { count } }";
                let mut next = Instant::now();
                while Instant::now() < until {
                    let at = chrono::Utc::now() - chrono::Duration::seconds(1);
                    let body = json!({ "query": mutation, "variables": { "input": { "interactions": [{
                        "relationship": known.relationship, "at": at.to_rfc3339(), "channel": "EMAIL",
                        "direction": "OUTBOUND", "sentiment": 0.5, "note": "overload-bench" }] } } });
                    let started = Instant::now();
                    let outcome = graphql(&client, &base, EDITOR_KEY, &body).await;
                    let took = started.elapsed();
                    {
                        let mut result = result.lock().unwrap();
                        result.writes.0.push(took);
                        match outcome {
                            Outcome::Ok => result.writes_ok += 1,
                            Outcome::Refused { limit, .. } => {
                                *result.writes_failed.entry(format!("429 {limit}")).or_default() += 1
                            }
                            Outcome::Failed(what) => *result.writes_failed.entry(what).or_default() += 1,
                        }
                    }
                    next += every;
                    tokio::time::sleep_until(next.max(Instant::now()).into()).await;
                }
            }));
        }
        // The health poller, every 50 ms.
        {
            let (base, result) = (base.clone(), result.clone());
            tasks.push(tokio::spawn(async move {
                let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
                let mut next = Instant::now();
                while Instant::now() < until {
                    let started = Instant::now();
                    let ok = client
                        .get(format!("{base}/healthz"))
                        .send()
                        .await
                        .is_ok_and(|response| response.status().is_success());
                    let took = started.elapsed();
                    {
                        let mut result = result.lock().unwrap();
                        result.healthz.0.push(took);
                        if !ok {
                            result.healthz_failures += 1;
                        }
                    }
                    next += Duration::from_millis(50);
                    tokio::time::sleep_until(next.max(Instant::now()).into()).await;
                }
            }));
        }
    }
    // RSS, every 250 ms.
    let pid = server.pid;
    let rss = {
        let result = result.clone();
        tokio::spawn(async move {
            while Instant::now() < until {
                let now = rss_mib(pid);
                {
                    let mut result = result.lock().unwrap();
                    result.rss_max = result.rss_max.max(now);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    for task in tasks {
        let _ = task.await;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = rss.await;
    Arc::try_unwrap(result).ok().expect("every task is done").into_inner().unwrap()
}

/// What the burst measured.
#[derive(Default)]
struct Burst {
    ran: u64,
    refused: BTreeMap<String, u64>,
    refused_with_retry_after: u64,
    failed: BTreeMap<String, u64>,
    elapsed: Duration,
}

async fn burst(args: &Args, server: &Server, known: &Known) -> Burst {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(args.burst)
        .build()
        .expect("client");
    let mut rng = ChaCha8Rng::seed_from_u64(77);
    let bodies: Vec<Value> = (0..args.burst).map(|_| json!({ "query": analysis(&mut rng, known) })).collect();
    // All at once: every request is ready before any is sent.
    let gate = Arc::new(tokio::sync::Barrier::new(args.burst));
    let started = Instant::now();
    let done = AtomicU64::new(0);
    let outcomes = futures_util::future::join_all(bodies.iter().enumerate().map(|(n, body)| {
        let (client, gate, base, done) = (client.clone(), gate.clone(), server.base.clone(), &done);
        async move {
            gate.wait().await;
            let outcome = graphql(&client, &base, &burst_key(n), body).await;
            done.fetch_add(1, Ordering::Relaxed);
            outcome
        }
    }))
    .await;
    let mut result = Burst { elapsed: started.elapsed(), ..Burst::default() };
    for outcome in outcomes {
        match outcome {
            Outcome::Ok => result.ran += 1,
            Outcome::Refused { limit, retry_after, .. } => {
                *result.refused.entry(limit).or_default() += 1;
                result.refused_with_retry_after += u64::from(retry_after);
            }
            Outcome::Failed(what) => *result.failed.entry(what).or_default() += 1,
        }
    }
    result
}

/// The server's RSS around held `strengthCrossed` subscriptions, in MiB.
struct Held {
    before: f64,
    held: f64,
    after: f64,
    again: f64,
    after_again: f64,
}

/// Opens `--subscriptions` `strengthCrossed` subscriptions watching everything, spread over
/// `--subscription-connections` WebSockets (the probe's key), reads the server's RSS once it settles, closes them
/// and reads it again; then all of it once more.
async fn subscriptions(args: &Args, server: &Server) -> anyhow::Result<Held> {
    let settled = || async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        rss_mib(server.pid)
    };
    let before = settled().await;
    let held = hold(args, server).await?;
    let after = settled().await;
    // The same again: memory freed on close is reused by the next subscriptions, not taken anew.
    let again = hold(args, server).await?;
    let after_again = settled().await;
    Ok(Held { before, held, after, again, after_again })
}

/// Opens the subscriptions, reads the server's RSS once it settles, closes them; returns that RSS.
async fn hold(args: &Args, server: &Server) -> anyhow::Result<f64> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};
    let url = format!("{}/graphql/ws", server.base.replacen("http://", "ws://", 1));
    let connections = args.subscription_connections.max(1);
    let mut sockets = Vec::new();
    for connection in 0..connections {
        let mut request = url.as_str().into_client_request()?;
        request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse()?);
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.context("WebSocket connection")?;
        let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {PROBE_KEY}") } });
        socket.send(Message::text(init.to_string())).await?;
        let ack = socket.next().await.context("connection_ack")??;
        ensure!(ack.to_text()?.contains("connection_ack"), "expected connection_ack, got {ack}");
        let share = (connection..args.subscriptions).step_by(connections);
        for id in share {
            let query =
                "subscription { strengthCrossed(threshold: 0.5) { cursor crossings { relationship direction } } }";
            let subscribe = json!({ "id": id.to_string(), "type": "subscribe", "payload": { "query": query } });
            socket.send(Message::text(subscribe.to_string())).await?;
        }
        // A ping answered after the subscribes: the server has read them all.
        socket.send(Message::text(json!({ "type": "ping" }).to_string())).await?;
        loop {
            let message = socket.next().await.context("pong")??;
            let text = message.to_text().unwrap_or_default();
            if text.contains("\"pong\"") {
                break;
            }
            ensure!(!text.contains("\"error\""), "a subscription was refused: {text}");
        }
        sockets.push(socket);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let held = rss_mib(server.pid);
    for mut socket in sockets {
        let _ = socket.close(None).await;
    }
    Ok(held)
}

fn spread(values: &[f64]) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(0.0, f64::max);
    format!("{min:.2}–{max:.2}")
}

async fn run(args: Args, cores: usize, pinning: Pinning) -> anyhow::Result<()> {
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned));
    let binary = binary(&args)?;
    let db = database(&args, &binary)?;
    progress(format!("starting {} serve over {}", binary.display(), db.display()));
    let server = start(&binary, &db, &args, &pinning)?;
    let setup = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
    ready(&setup, &server.base).await?;
    let known = Arc::new(discover(&setup, &server.base).await?);
    // Warm up: the projection is built; let the first requests fill the caches.
    for _ in 0..20 {
        let body = json!({ "query": "query($id: ID!) { node(id: $id) { id } }", "variables": { "id": known.stakeholders[0] } });
        let _ = graphql(&setup, &server.base, PROBE_KEY, &body).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = rss_mib(server.pid);
    // Subscriptions' memory first, on a heap that no analysis has grown yet.
    progress(format!("{} strengthCrossed subscriptions, held, closed, and again", args.subscriptions));
    let held = subscriptions(&args, &server).await?;

    let mut text = String::new();
    let mut line = |line: String| {
        text.push_str(&line);
        text.push('\n');
    };
    line(format!(
        "overload-bench: {} stakeholders, {cores} cores (load average {} before starting), binary {}",
        args.size,
        load.as_deref().unwrap_or("unknown"),
        binary.display()
    ));
    line(format!("  {}", pinning.note));
    line(format!(
        "  {} round(s) of {:.0} s unloaded then {:.0} s loaded; probe: node(id) every {} ms; load: {} analysis \
         clients ({}), a write every {} ms, /healthz every 50 ms",
        args.rounds,
        args.seconds,
        args.seconds,
        args.probe_every_ms,
        args.clients,
        if args.honor_retry_after {
            "waiting out each Retry-After"
        } else {
            "ignoring Retry-After: a flood of refusals"
        },
        args.write_every_ms
    ));
    line(format!(
        "  {:<10} {:>5} {:>9} {:>9} {:>9} {:>7} {:>8} {:>9} {:>10} {:>8} {:>10} {:>9}",
        "phase",
        "round",
        "probes",
        "p50 ms",
        "p99 ms",
        "p99×",
        "analyses",
        "refused",
        "writes ok",
        "write p99",
        "healthz max",
        "RSS MiB"
    ));
    let mut rounds = Vec::new();
    let mut rss_during: f64 = 0.0;
    for round in 0..args.rounds {
        progress(format!("round {}: unloaded", round + 1));
        let unloaded = phase(&args, &server, &known, false, round).await;
        progress(format!("round {}: loaded", round + 1));
        let loaded = phase(&args, &server, &known, true, round).await;
        rss_during = rss_during.max(loaded.rss_max).max(unloaded.rss_max);
        let base_p99 = unloaded.probe.quantile(0.99);
        let ratio = ms(loaded.probe.quantile(0.99)) / ms(base_p99).max(1e-3);
        for (name, phase) in [("unloaded", &unloaded), ("loaded", &loaded)] {
            let refused: u64 = phase.analyses_refused.values().sum();
            line(format!(
                "  {:<10} {:>5} {:>9} {:>9.2} {:>9.2} {:>7} {:>8} {:>9} {:>10} {:>8.1} {:>10.1} {:>9.0}",
                name,
                round + 1,
                phase.probe.0.len(),
                ms(phase.probe.quantile(0.5)),
                ms(phase.probe.quantile(0.99)),
                if name == "loaded" { format!("{ratio:.2}") } else { "-".into() },
                phase.analyses_ok,
                refused,
                phase.writes_ok,
                ms(phase.writes.quantile(0.99)),
                ms(phase.healthz.max()),
                phase.rss_max
            ));
        }
        rounds.push((unloaded, loaded, ratio));
    }
    let ratios: Vec<f64> = rounds.iter().map(|(_, _, ratio)| *ratio).collect();
    let unloaded_p99: Vec<f64> = rounds.iter().map(|(unloaded, _, _)| ms(unloaded.probe.quantile(0.99))).collect();
    let loaded_p99: Vec<f64> = rounds.iter().map(|(_, loaded, _)| ms(loaded.probe.quantile(0.99))).collect();
    let healthz_max = rounds.iter().map(|(_, loaded, _)| loaded.healthz.max()).max().unwrap_or_default();
    let healthz_p99: Vec<f64> = rounds.iter().map(|(_, loaded, _)| ms(loaded.healthz.quantile(0.99))).collect();
    let mut refused: BTreeMap<String, u64> = BTreeMap::new();
    let mut failed: BTreeMap<String, u64> = BTreeMap::new();
    let mut write_failures: BTreeMap<String, u64> = BTreeMap::new();
    let (mut analyses_ok, mut writes_ok, mut probe_failures, mut healthz_failures) = (0, 0, 0, 0);
    let mut writes = Latencies::default();
    let mut analysis_latency = Latencies::default();
    for (unloaded, loaded, _) in &rounds {
        analyses_ok += loaded.analyses_ok;
        writes_ok += loaded.writes_ok;
        probe_failures += unloaded.probe_failures + loaded.probe_failures;
        healthz_failures += loaded.healthz_failures;
        writes.0.extend(&loaded.writes.0);
        analysis_latency.0.extend(&loaded.analysis_ok_latency.0);
        for (limit, count) in &loaded.analyses_refused {
            *refused.entry(limit.clone()).or_default() += count;
        }
        for (what, count) in &loaded.analyses_failed {
            *failed.entry(what.clone()).or_default() += count;
        }
        for (what, count) in &loaded.writes_failed {
            *write_failures.entry(what.clone()).or_default() += count;
        }
    }
    line(format!(
        "  probe p99: unloaded {} ms (spread {}), loaded {} ms (spread {}); loaded ÷ unloaded p99 per round {:?} \
         (spread {}; target ≤ 2); probe failures {probe_failures}",
        unloaded_p99.iter().map(|v| format!("{v:.2}")).collect::<Vec<_>>().join("/"),
        spread(&unloaded_p99),
        loaded_p99.iter().map(|v| format!("{v:.2}")).collect::<Vec<_>>().join("/"),
        spread(&loaded_p99),
        ratios.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>(),
        spread(&ratios)
    ));
    line(format!(
        "  analyses while loaded: {analyses_ok} completed (p50 {:.0} ms, p99 {:.0} ms), refused with 429 \
         LIMIT_EXCEEDED by limit {refused:?}, other failures {failed:?}",
        ms(analysis_latency.quantile(0.5)),
        ms(analysis_latency.quantile(0.99))
    ));
    line(format!(
        "  writes while loaded: {writes_ok} of {} succeeded (p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms), failures {write_failures:?}",
        writes.0.len(),
        ms(writes.quantile(0.5)),
        ms(writes.quantile(0.99)),
        ms(writes.max())
    ));
    line(format!(
        "  /healthz while loaded: slowest {:.1} ms (target ≤ 50 ms), p99 per round {:?}, failures {healthz_failures}",
        ms(healthz_max),
        healthz_p99.iter().map(|v| format!("{v:.1}")).collect::<Vec<_>>()
    ));

    progress(format!("burst of {} analyses", args.burst));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let burst = burst(&args, &server, &known).await;
    let refused_total: u64 = burst.refused.values().sum();
    line(format!(
        "  burst of {} analyses at once (each its own key): {} ran, {refused_total} refused with 429 LIMIT_EXCEEDED \
         ({} of them with Retry-After and retryAfter) by limit {:?}, other failures {:?}; all answered in {:.2} s",
        args.burst,
        burst.ran,
        burst.refused_with_retry_after,
        burst.refused,
        burst.failed,
        burst.elapsed.as_secs_f64()
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_after = rss_mib(server.pid);
    line(format!(
        "  server RSS: {rss_before:.0} MiB before, {rss_during:.0} MiB highest during, {rss_after:.0} MiB after"
    ));

    line(format!(
        "  {} strengthCrossed subscriptions watching every relationship, over {} connections: server RSS {:.1} MiB \
         before, {:.1} MiB held ({:.0} KiB each), {:.1} MiB after they closed; opened again: {:.1} MiB held, \
         {:.1} MiB after",
        args.subscriptions,
        args.subscription_connections,
        held.before,
        held.held,
        (held.held - held.before) * 1024.0 / args.subscriptions as f64,
        held.after,
        held.again,
        held.after_again
    ));

    let figures = json!({
        "size": args.size,
        "cores": cores,
        "pinning": pinning.note,
        "load_average_before": load,
        "seconds_per_phase": args.seconds,
        "honor_retry_after": args.honor_retry_after,
        "rounds": rounds.iter().enumerate().map(|(n, (unloaded, loaded, ratio))| json!({
            "round": n + 1,
            "unloaded": { "probes": unloaded.probe.0.len(), "p50_ms": ms(unloaded.probe.quantile(0.5)), "p99_ms": ms(unloaded.probe.quantile(0.99)) },
            "loaded": {
                "probes": loaded.probe.0.len(), "p50_ms": ms(loaded.probe.quantile(0.5)), "p99_ms": ms(loaded.probe.quantile(0.99)),
                "analyses_ok": loaded.analyses_ok, "analyses_refused": loaded.analyses_refused, "analyses_failed": loaded.analyses_failed,
                "writes_ok": loaded.writes_ok, "writes": loaded.writes.0.len(), "write_p99_ms": ms(loaded.writes.quantile(0.99)),
                "healthz_max_ms": ms(loaded.healthz.max()), "rss_max_mib": loaded.rss_max,
            },
            "p99_ratio": ratio,
        })).collect::<Vec<_>>(),
        "p99_ratio_spread": [ratios.iter().copied().fold(f64::INFINITY, f64::min), ratios.iter().copied().fold(0.0, f64::max)],
        "healthz_max_ms": ms(healthz_max),
        "analyses": { "ok": analyses_ok, "refused": refused, "failed": failed },
        "writes": { "ok": writes_ok, "total": writes.0.len(), "p50_ms": ms(writes.quantile(0.5)), "p99_ms": ms(writes.quantile(0.99)), "failed": write_failures },
        "burst": { "sent": args.burst, "ran": burst.ran, "refused": burst.refused, "refused_with_retry_after": burst.refused_with_retry_after, "failed": burst.failed, "seconds": burst.elapsed.as_secs_f64() },
        "rss_mib": { "before": rss_before, "during_max": rss_during, "after": rss_after },
        "subscriptions": { "count": args.subscriptions, "connections": args.subscription_connections, "rss_mib_before": held.before, "rss_mib_held": held.held, "rss_mib_after": held.after, "rss_mib_held_again": held.again, "rss_mib_after_again": held.after_again },
    });
    if args.json {
        eprint!("{text}");
        println!("{}", serde_json::to_string(&figures)?);
    } else {
        print!("{text}");
    }
    Ok(())
}
