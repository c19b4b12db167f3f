//! `cargo xtask bench [--quick] [--no-webrtc] [--sessions N,N,…] [--sdk-sessions N,N,…|none]
//! [--out DIR]`: runs every benchmark — reelthyme's harnesses (`crates/bench`), the peers on
//! the same bytes (`benchmarks/peers/`: Node, CPython, openai-python in the SDK's venv), the
//! scale ramp against the simulator, the same scale work by openai-python clients at a few
//! sizes beside reelthyme's, the audio path latencies, the criterion benches — and writes `benchmarks/RESULTS.md` and
//! `benchmarks/scaling.svg` from that one run.
//!
//! Each measured process is pinned to a core with `taskset` (the simulator on the first,
//! clients and codec loops on the last) and started at raised priority (`nice -n -10`)
//! when the system allows it; without either it runs unpinned, and RESULTS.md says so.
//! Builds are never pinned. Only the packages a harness needs are built (`-p`), in the
//! bench profile; the WebRTC setup bench, the one that needs webrtc-rs in release, runs
//! last (`--no-webrtc` skips it).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cargo;

/// p99 delay goal of the scale ramp.
const P99_GOAL_MS: f64 = 10.0;

/// A figure line: `NAME key=value …`.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub name: String,
    pub fields: BTreeMap<String, String>,
}

impl Figure {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    pub fn number(&self, key: &str) -> Option<f64> {
        self.get(key)?.parse().ok()
    }
}

/// Reads a harness's output line: `NAME k=v k=v…` (every token after the name a pair), or
/// criterion's `--output-format bencher` line (`test NAME ... bench: 1,234 ns/iter (+/- 5)`,
/// as `criterion.NAME ns_per_iter=1234`). Anything else is not a figure.
pub fn parse_line(line: &str) -> Option<Figure> {
    let line = line.trim();
    if let Some(rest) = line.strip_prefix("test ") {
        let (name, rest) = rest.split_once(" ... bench:")?;
        let ns = rest.split_whitespace().next()?.replace(',', "");
        ns.parse::<f64>().ok()?;
        let mut fields = BTreeMap::new();
        fields.insert("ns_per_iter".to_owned(), ns);
        return Some(Figure {
            name: format!("criterion.{}", name.trim()),
            fields,
        });
    }
    let mut tokens = line.split_whitespace();
    let name = tokens.next()?;
    if name.contains('=') {
        return None;
    }
    let mut fields = BTreeMap::new();
    for token in tokens {
        let (key, value) = token.split_once('=')?;
        if key.is_empty() {
            return None;
        }
        fields.insert(key.to_owned(), value.to_owned());
    }
    if fields.is_empty() {
        return None;
    }
    Some(Figure {
        name: name.to_owned(),
        fields,
    })
}

/// What the run was given.
#[derive(Debug, Clone)]
struct Args {
    quick: bool,
    webrtc: bool,
    sessions: Vec<usize>,
    /// Session counts of the openai-python comparison (empty: skipped).
    sdk_sessions: Vec<usize>,
    out: PathBuf,
}

fn parse_args(root: &Path, args: &[String]) -> Result<Args> {
    let mut parsed = Args {
        quick: false,
        webrtc: true,
        sessions: vec![50, 100, 200, 400, 700, 1000, 1400, 2000, 3000],
        sdk_sessions: vec![10, 50, 100],
        out: root.join("benchmarks"),
    };
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--quick" => parsed.quick = true,
            "--no-webrtc" => parsed.webrtc = false,
            "--sessions" => {
                let list = iter.next().context("--sessions N,N,…")?;
                parsed.sessions = list
                    .split(',')
                    .map(|n| n.trim().parse().context("--sessions takes numbers"))
                    .collect::<Result<_>>()?;
            }
            "--sdk-sessions" => {
                let list = iter.next().context("--sdk-sessions N,N,… (or none)")?;
                parsed.sdk_sessions = if list == "none" {
                    Vec::new()
                } else {
                    list.split(',')
                        .map(|n| n.trim().parse().context("--sdk-sessions takes numbers"))
                        .collect::<Result<_>>()?
                };
            }
            "--out" => parsed.out = PathBuf::from(iter.next().context("--out DIR")?),
            other => bail!("cargo xtask bench: unknown argument {other}"),
        }
    }
    if parsed.quick && !args.iter().any(|a| a == "--sessions") {
        parsed.sessions = vec![10, 20];
    }
    if parsed.quick && !args.iter().any(|a| a == "--sdk-sessions") {
        parsed.sdk_sessions = vec![10];
    }
    Ok(parsed)
}

/// How measured processes are started: pinned and prioritised when possible.
#[derive(Debug, Clone)]
struct Pinning {
    taskset: bool,
    nice: bool,
    cores: usize,
}

impl Pinning {
    fn detect() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let taskset = Command::new("taskset")
            .args(["-c", "0", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        // GNU nice runs the command anyway when it may not raise the priority: ask the
        // inner `nice` what it got.
        let nice = Command::new("nice")
            .args(["-n", "-10", "nice"])
            .stderr(Stdio::null())
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "-10");
        Self {
            taskset,
            nice,
            cores,
        }
    }

    /// The client's core (the last) and the simulator's (the first).
    fn client_core(&self) -> usize {
        self.cores.saturating_sub(1)
    }

    fn command(&self, core: usize, program: &Path, args: &[&str]) -> Command {
        let mut words: Vec<String> = Vec::new();
        if self.nice {
            words.extend(["nice", "-n", "-10"].map(String::from));
        }
        if self.taskset && self.cores > 1 {
            words.extend(["taskset".to_owned(), "-c".to_owned(), core.to_string()]);
        }
        words.push(program.display().to_string());
        words.extend(args.iter().map(|a| (*a).to_owned()));
        let mut command = Command::new(&words[0]);
        command.args(&words[1..]);
        command
    }

    /// As [`Self::command`] without the core: at raised priority when allowed.
    fn unpinned(&self, program: &Path, args: &[&str]) -> Command {
        let mut command = if self.nice {
            let mut c = Command::new("nice");
            c.args(["-n", "-10"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        command.args(args);
        command
    }

    fn describe(&self) -> String {
        let pin = if self.taskset && self.cores > 1 {
            format!(
                "pinned with `taskset` (simulator on core 0, clients and codec loops on core {})",
                self.client_core()
            )
        } else {
            "not pinned (no `taskset`, or one core)".to_owned()
        };
        let nice = if self.nice {
            "at `nice -n -10`"
        } else {
            "at normal priority (raising it was not allowed)"
        };
        format!("{pin}, {nice}")
    }
}

/// Runs a command to its end and gives its figure lines (stdout), failing on a bad exit.
fn figures_of(mut command: Command, what: &str) -> Result<Vec<Figure>> {
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {what}"))?;
    if !output.status.success() {
        bail!("{what} failed ({})", output.status);
    }
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text.lines().filter_map(parse_line).collect())
}

/// Builds bench targets of `package` (no pinning) and gives `(target name, executable)`.
fn build_benches(root: &Path, package: &str, benches: &[&str]) -> Result<Vec<(String, PathBuf)>> {
    build_benches_within(root, package, benches, None)
}

/// As [`build_benches`], giving up (and stopping the cargo it started) after `limit`.
fn build_benches_within(
    root: &Path,
    package: &str,
    benches: &[&str],
    limit: Option<Duration>,
) -> Result<Vec<(String, PathBuf)>> {
    let mut command = Command::new(cargo());
    command.current_dir(root).args([
        "bench",
        "--no-run",
        "--message-format=json-render-diagnostics",
        "-p",
        package,
    ]);
    for bench in benches {
        command.args(["--bench", bench]);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cargo bench --no-run")?;
    // Read stdout beside the wait, so that a full pipe never stalls cargo.
    let mut stdout = child.stdout.take().context("cargo's stdout")?;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if limit.is_some_and(|limit| started.elapsed() > limit) {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "building the benches of {package} took over {} s: stopped",
                limit.map_or(0, |l| l.as_secs())
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let stdout = reader.join().unwrap_or_default();
    if !status.success() {
        bail!("building the benches of {package} failed");
    }
    let mut built = Vec::new();
    for line in stdout.lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let (Some(executable), Some(name)) = (
            message["executable"].as_str(),
            message["target"]["name"].as_str(),
        ) else {
            continue;
        };
        built.push((name.to_owned(), PathBuf::from(executable)));
    }
    Ok(built)
}

fn shell_line(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The machine, as RESULTS.md describes it.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    pub date: String,
    pub nproc: String,
    pub cpu: String,
    pub kernel: String,
    pub rustc: String,
    pub load_start: String,
    pub load_end: String,
    pub pinning: String,
}

fn machine(pinning: &Pinning) -> Machine {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    Machine {
        date: shell_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default(),
        nproc: shell_line("nproc", &[]).unwrap_or_else(|| pinning.cores.to_string()),
        cpu,
        kernel: shell_line("uname", &["-sr"]).unwrap_or_default(),
        rustc: shell_line("rustc", &["-V"]).unwrap_or_default(),
        load_start: loadavg(),
        load_end: String::new(),
        pinning: pinning.describe(),
    }
}

/// The simulator process of the scale ramp; dropping it closes its stdin, and it exits.
struct SimProcess {
    child: Child,
    url: String,
}

impl SimProcess {
    fn start(pinning: &Pinning, binary: &Path) -> Result<Self> {
        let mut child = pinning
            .command(0, binary, &["sim"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the simulator")?;
        let stdout = child.stdout.take().context("the simulator's stdout")?;
        let mut first = String::new();
        BufReader::new(stdout).read_line(&mut first)?;
        let url = parse_line(&first)
            .and_then(|f| f.get("url").map(str::to_owned))
            .with_context(|| format!("the simulator said {first:?}"))?;
        Ok(Self { child, url })
    }

    /// CPU seconds the simulator has used so far.
    fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        let rest = &stat[stat.rfind(')')? + 1..];
        let mut fields = rest.split_whitespace().skip(11);
        let user: f64 = fields.next()?.parse().ok()?;
        let system: f64 = fields.next()?.parse().ok()?;
        Some((user + system) / 100.0)
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything one run measured.
#[derive(Debug, Default)]
pub struct Run {
    pub machine: Machine,
    pub figures: Vec<Figure>,
    pub scale: Vec<Figure>,
    /// Pairs at equal N, run one after the other: reelthyme's `scale` line and
    /// openai-python's `scale.openai_python` line (`None`: it failed or was stopped).
    pub sdk_scale: Vec<(Figure, Option<Figure>)>,
    /// `audio.*` lines of the audio path harness.
    pub audio: Vec<Figure>,
    pub notes: Vec<String>,
}

impl Run {
    pub fn find(&self, name: &str) -> Option<&Figure> {
        self.figures.iter().find(|f| f.name == name)
    }

    fn rate(&self, name: &str) -> Option<f64> {
        self.find(name)?.number("events_per_s")
    }
}

pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let args = parse_args(root, args)?;
    let pinning = Pinning::detect();
    let mut run = Run {
        machine: machine(&pinning),
        ..Run::default()
    };
    let (seconds, rounds) = if args.quick { ("0.2", "2") } else { ("1", "5") };
    let fixtures = root.join("benchmarks/fixtures");

    println!("bench: building reelthyme-bench (release)");
    let status = Command::new(cargo())
        .current_dir(root)
        .args(["build", "--profile", "bench", "-p", "reelthyme-bench"])
        .status()?;
    if !status.success() {
        bail!("building reelthyme-bench failed");
    }
    let binary = crate::suite::target_dir(root).join("release/reelthyme-bench");
    let fixtures_arg = fixtures.display().to_string();
    let core = pinning.client_core();

    println!("bench: codec (reelthyme)");
    run.figures.extend(figures_of(
        pinning.command(
            core,
            &binary,
            &[
                "codec",
                "--fixtures",
                &fixtures_arg,
                "--seconds",
                seconds,
                "--rounds",
                rounds,
            ],
        ),
        "reelthyme-bench codec",
    )?);

    println!("bench: codec (Node)");
    let node = root.join("benchmarks/peers/codec.js");
    match figures_of(
        pinning.command(
            core,
            Path::new("node"),
            &[&node.display().to_string(), &fixtures_arg, seconds, rounds],
        ),
        "node",
    ) {
        Ok(figures) => run.figures.extend(figures),
        Err(e) => run.notes.push(format!("Node peer skipped: {e:#}")),
    }

    println!("bench: codec (CPython, openai-python)");
    let venv = crate::suite::target_dir(root).join("sdk-venv/bin/python");
    let sdk_python = venv.exists().then(|| venv.clone());
    let python = if venv.exists() {
        venv
    } else {
        run.notes.push(
            "openai-python skipped: no SDK venv (run `cargo xtask setup`); plain CPython only"
                .into(),
        );
        PathBuf::from("python3")
    };
    let script = root.join("benchmarks/peers/codec.py");
    match figures_of(
        pinning.command(
            core,
            &python,
            &[
                &script.display().to_string(),
                &fixtures_arg,
                seconds,
                rounds,
            ],
        ),
        "python",
    ) {
        Ok(figures) => run.figures.extend(figures),
        Err(e) => run.notes.push(format!("Python peers skipped: {e:#}")),
    }

    println!("bench: scale ramp {:?}", args.sessions);
    scale_ramp(&args, &pinning, &binary, &mut run)?;

    match (&sdk_python, args.sdk_sessions.is_empty()) {
        (_, true) => run
            .notes
            .push("openai-python scale skipped (`--sdk-sessions` empty).".into()),
        (None, false) => run
            .notes
            .push("openai-python scale skipped: no SDK venv (run `cargo xtask setup`)".into()),
        (Some(python), false) => {
            println!(
                "bench: scale, reelthyme vs openai-python {:?}",
                args.sdk_sessions
            );
            let script = root.join("benchmarks/peers/scale_sdk.py");
            sdk_scale(&args, &pinning, &binary, python, &script, &mut run)?;
        }
    }

    println!("bench: audio path latencies (clocked devices)");
    audio_path(&args, &pinning, &binary, &mut run);

    println!("bench: criterion benches");
    criterion(root, &pinning, &args, &mut run);

    println!("bench: the conversation model over an hour of turns");
    conversation_hour(root, &mut run);

    if args.webrtc {
        println!("bench: webrtc setup (builds webrtc-rs in release; last)");
        webrtc_setup(root, &pinning, &mut run);
    } else {
        run.notes
            .push("WebRTC setup bench skipped (`--no-webrtc`).".into());
    }

    run.machine.load_end = loadavg();
    std::fs::create_dir_all(&args.out)?;
    let notes = std::fs::read_to_string(root.join("benchmarks/NOTES.md")).unwrap_or_default();
    let results = args.out.join("RESULTS.md");
    std::fs::write(&results, render(&run, &notes))?;
    std::fs::write(args.out.join("scaling.svg"), scaling_svg(&run.scale))?;
    println!("wrote {} and scaling.svg", results.display());
    Ok(())
}

fn scale_ramp(args: &Args, pinning: &Pinning, binary: &Path, run: &mut Run) -> Result<()> {
    let sim = SimProcess::start(pinning, binary)?;
    let (warmup, measure) = if args.quick { ("1", "2") } else { ("3", "8") };
    let mut over = 0;
    for &sessions in &args.sessions {
        let sim_cpu_start = sim.cpu_seconds();
        let started = Instant::now();
        let n = sessions.to_string();
        let result = figures_of(
            pinning.command(
                pinning.client_core(),
                binary,
                &[
                    "scale",
                    "--url",
                    &sim.url,
                    "--sessions",
                    &n,
                    "--warmup",
                    warmup,
                    "--seconds",
                    measure,
                ],
            ),
            "reelthyme-bench scale",
        );
        let elapsed = started.elapsed().as_secs_f64();
        let mut figure = match result.map(|f| f.into_iter().find(|f| f.name == "scale")) {
            Ok(Some(figure)) => figure,
            Ok(None) => bail!("the scale run of {sessions} printed no figure"),
            Err(e) => {
                run.notes
                    .push(format!("scale run of {sessions} sessions failed: {e:#}"));
                break;
            }
        };
        // The simulator's share of its core over the whole client run (connects included).
        if let (Some(a), Some(b)) = (sim_cpu_start, sim.cpu_seconds()) {
            figure.fields.insert(
                "sim_cpu_pct".into(),
                format!("{:.1}", 100.0 * (b - a) / elapsed),
            );
        }
        println!(
            "  {sessions} sessions: p99 {} ms, client CPU {} %, sim CPU {} %",
            figure.get("p99_ms").unwrap_or("?"),
            figure.get("client_cpu_pct").unwrap_or("?"),
            figure.get("sim_cpu_pct").unwrap_or("?"),
        );
        let p99 = figure.number("p99_ms").unwrap_or(f64::INFINITY);
        let errors = figure.number("errors").unwrap_or(0.0);
        run.scale.push(figure);
        // Two sizes past the goal show the knee; more only costs time.
        if p99 > P99_GOAL_MS || errors > 0.0 {
            over += 1;
            if over >= 2 {
                break;
            }
        }
    }
    Ok(())
}

/// The audio path latencies (`reelthyme-bench audio`): one process, not pinned (its
/// runtime, simulator and the two device threads would queue behind each other on one
/// core, which no audio application does), at the raised priority when allowed.
fn audio_path(args: &Args, pinning: &Pinning, binary: &Path, run: &mut Run) {
    let (seconds, barge_ins) = if args.quick { ("3", "5") } else { ("20", "20") };
    match figures_of(
        pinning.unpinned(
            binary,
            &["audio", "--seconds", seconds, "--barge-ins", barge_ins],
        ),
        "reelthyme-bench audio",
    ) {
        Ok(figures) => run.audio.extend(figures),
        Err(e) => run.notes.push(format!("audio path latencies: {e:#}")),
    }
}

/// The scale harness driven by openai-python clients (`benchmarks/peers/scale_sdk.py`),
/// each size right after reelthyme's at the same size, on the same client core against
/// the same simulator process. Python is slow: each SDK run is bounded (`timeout`), and
/// sizes stop once the SDK saturates its core.
fn sdk_scale(
    args: &Args,
    pinning: &Pinning,
    binary: &Path,
    python: &Path,
    script: &Path,
    run: &mut Run,
) -> Result<()> {
    let sim = SimProcess::start(pinning, binary)?;
    let (warmup, measure) = if args.quick { ("1", "2") } else { ("3", "8") };
    let script = script.display().to_string();
    let python = python.display().to_string();
    for &sessions in &args.sdk_sessions {
        let n = sessions.to_string();
        let ours = figures_of(
            pinning.command(
                pinning.client_core(),
                binary,
                &[
                    "scale",
                    "--url",
                    &sim.url,
                    "--sessions",
                    &n,
                    "--warmup",
                    warmup,
                    "--seconds",
                    measure,
                ],
            ),
            "reelthyme-bench scale",
        )?
        .into_iter()
        .find(|f| f.name == "scale")
        .with_context(|| format!("the scale run of {sessions} printed no figure"))?;
        let theirs = figures_of(
            pinning.command(
                pinning.client_core(),
                Path::new("timeout"),
                &["180", &python, &script, &sim.url, &n, warmup, measure],
            ),
            "openai-python scale",
        );
        let theirs = match theirs.map(|f| f.into_iter().find(|f| f.name == "scale.openai_python")) {
            Ok(Some(figure)) => Some(figure),
            Ok(None) => {
                run.notes.push(format!(
                    "openai-python scale at {sessions} printed no figure"
                ));
                None
            }
            Err(e) => {
                run.notes
                    .push(format!("openai-python scale at {sessions}: {e:#}"));
                None
            }
        };
        println!(
            "  {sessions} sessions: CPU/session reelthyme {} %, openai-python {} %",
            ours.get("client_cpu_pct_per_session").unwrap_or("?"),
            theirs
                .as_ref()
                .and_then(|f| f.get("client_cpu_pct_per_session"))
                .unwrap_or("?"),
        );
        let saturated = theirs
            .as_ref()
            .is_none_or(|f| f.number("client_cpu_pct").unwrap_or(100.0) >= 90.0);
        run.sdk_scale.push((ours, theirs));
        if saturated {
            if sessions != *args.sdk_sessions.last().unwrap_or(&sessions) {
                run.notes.push(format!(
                    "openai-python scale stopped after {sessions} sessions: the SDK's client \
                     used ≥ 90 % of its core (or failed)"
                ));
            }
            break;
        }
    }
    Ok(())
}

fn criterion(root: &Path, pinning: &Pinning, args: &Args, run: &mut Run) {
    let time = if args.quick { "0.3" } else { "2" };
    let mut benches: Vec<(&str, &str)> = vec![
        ("reelthyme-schema", "audio_events"),
        ("reelthyme-audio", "resample"),
    ];
    if root.join("crates/audio/benches/aec.rs").exists() {
        benches.push(("reelthyme-audio", "aec"));
    } else {
        run.notes
            .push("crates/audio/benches/aec.rs does not exist yet: skipped".into());
    }
    for (package, bench) in benches {
        let built = match build_benches(root, package, &[bench]) {
            Ok(built) => built,
            Err(e) => {
                run.notes.push(format!("{package} {bench}: {e:#}"));
                continue;
            }
        };
        for (name, executable) in built.into_iter().filter(|(name, _)| name == bench) {
            let command = pinning.command(
                pinning.client_core(),
                &executable,
                &[
                    "--bench",
                    "--output-format",
                    "bencher",
                    "--warm-up-time",
                    "1",
                    "--measurement-time",
                    time,
                ],
            );
            match figures_of(command, &name) {
                Ok(figures) if figures.is_empty() => {
                    run.notes
                        .push(format!("{package} bench {name} printed no figure"));
                }
                Ok(figures) => run.figures.extend(figures),
                Err(e) => run.notes.push(format!("{package} bench {name}: {e:#}")),
            }
        }
    }
}

/// The conversation model's growth over an hour of voice turns: a test that prints it.
fn conversation_hour(root: &Path, run: &mut Run) {
    if !root
        .join("crates/schema/tests/conversation_memory.rs")
        .exists()
    {
        run.notes
            .push("crates/schema/tests/conversation_memory.rs does not exist: skipped".into());
        return;
    }
    let output = Command::new(cargo())
        .current_dir(root)
        .args([
            "test",
            "--release",
            "-p",
            "reelthyme-schema",
            "--test",
            "conversation_memory",
            "--",
            "--nocapture",
        ])
        .output();
    let Ok(output) = output else {
        run.notes
            .push("conversation_memory: cargo failed to start".into());
        return;
    };
    let text = String::from_utf8_lossy(&output.stderr);
    let line = text.lines().find(|l| l.contains("bytes a turn"));
    match (output.status.success(), line) {
        (true, Some(line)) => {
            let per_turn = line
                .rsplit_once("; ")
                .and_then(|(_, tail)| tail.split_whitespace().next())
                .unwrap_or("?");
            let mut fields = BTreeMap::new();
            fields.insert("bytes_per_turn".into(), per_turn.to_owned());
            fields.insert("turns".into(), "360".into());
            run.figures.push(Figure {
                name: "memory.conversation_hour".into(),
                fields,
            });
            run.notes
                .push(format!("conversation_memory said: {}", line.trim()));
        }
        _ => run
            .notes
            .push("conversation_memory did not pass or printed no figure".into()),
    }
}

/// The WebRTC engineer's setup bench: `webrtc_setup runs=20 p50_ms=… p99_ms=…` lines.
fn webrtc_setup(root: &Path, pinning: &Pinning, run: &mut Run) {
    if !root.join("crates/webrtc/benches/setup.rs").exists() {
        run.notes
            .push("crates/webrtc/benches/setup.rs does not exist yet: skipped".into());
        return;
    }
    // webrtc-rs in release is the heaviest build of the run: time-boxed.
    let limit = Duration::from_secs(6 * 60);
    let built = match build_benches_within(root, "reelthyme-webrtc", &["setup"], Some(limit)) {
        Ok(built) => built,
        Err(e) => {
            run.notes.push(format!("webrtc setup bench: {e:#}"));
            return;
        }
    };
    for (_, executable) in built.into_iter().filter(|(name, _)| name == "setup") {
        match figures_of(
            pinning.command(pinning.client_core(), &executable, &["--bench"]),
            "webrtc setup bench",
        ) {
            Ok(figures) => run.figures.extend(figures),
            Err(e) => run.notes.push(format!("webrtc setup bench: {e:#}")),
        }
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "–".into(),
    }
}

fn rate_cell(rate: Option<f64>) -> String {
    match rate {
        Some(r) if r >= 1e6 => format!("{:.2} M/s", r / 1e6),
        Some(r) if r >= 1e3 => format!("{:.1} k/s", r / 1e3),
        Some(r) => format!("{r:.0}/s"),
        None => "–".into(),
    }
}

/// The largest session count whose p99 met the goal, without errors.
pub fn largest_within_goal(scale: &[Figure]) -> Option<&Figure> {
    scale
        .iter()
        .filter(|f| {
            f.number("p99_ms").is_some_and(|p| p <= P99_GOAL_MS)
                && f.number("errors").unwrap_or(0.0) == 0.0
        })
        .max_by_key(|f| f.number("sessions").map_or(0, |n| n as u64))
}

/// RESULTS.md of a run (`notes`: benchmarks/NOTES.md, appended as written).
pub fn render(run: &Run, notes: &str) -> String {
    let m = &run.machine;
    let mut out = String::new();
    let _ = writeln!(out, "# Benchmark results\n");
    let _ = writeln!(
        out,
        "Written by `cargo xtask bench` on {} — one run; every ratio below compares figures \
         of this same run.\n",
        m.date
    );
    let _ = writeln!(out, "## Machine\n");
    let _ = writeln!(out, "- `nproc`: {}; CPU: {}", m.nproc, m.cpu);
    let _ = writeln!(out, "- {}; {}", m.kernel, m.rustc);
    let _ = writeln!(out, "- measured processes {}", m.pinning);
    let _ = writeln!(
        out,
        "- load average (1, 5, 15 min) at the start: {}; at the end: {}. The machine is \
         shared (other builds run beside the benchmarks), so absolute figures move from run \
         to run: read the same-run ratios.\n",
        m.load_start, m.load_end
    );

    let _ = writeln!(out, "## Event decode and encode (one core)\n");
    let _ = writeln!(
        out,
        "The same bytes for everyone (`benchmarks/fixtures/`: a 20 ms \
         `response.output_audio.delta` of {} bytes; the `input_audio_buffer.append` of those \
         480 samples, {} bytes). Decode: parse + base64 into samples; encode: samples → \
         base64 → JSON text. Each harness checks its output against the fixtures, then \
         reports its best of several rounds of ≥ 1 s.\n",
        run.find("codec.fixture")
            .and_then(|f| f.get("delta_bytes"))
            .unwrap_or("?"),
        run.find("codec.fixture")
            .and_then(|f| f.get("append_bytes"))
            .unwrap_or("?"),
    );
    let _ = writeln!(
        out,
        "| implementation | decode | × Node | × openai-python | encode | × Node | × openai-python |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    let peers = [
        (
            "reelthyme (typed: `ServerEvent::from_json`, `ClientEvent::audio_append`)",
            "reelthyme",
        ),
        (
            "serde_json via `Value` (in-process baseline)",
            "serde_value",
        ),
        (
            "Node (`JSON.parse`/`JSON.stringify` + `Buffer`, untyped)",
            "node",
        ),
        ("CPython (`json` + `base64`, untyped)", "cpython"),
        (
            "openai-python (pydantic `TypeAdapter(RealtimeServerEvent)`, SDK send path)",
            "openai_python",
        ),
    ];
    for (label, key) in peers {
        let decode = run.rate(&format!("decode.{key}"));
        let encode = run.rate(&format!("encode.{key}"));
        if decode.is_none() && encode.is_none() {
            continue;
        }
        let _ = writeln!(
            out,
            "| {label} | {} | {} | {} | {} | {} | {} |",
            rate_cell(decode),
            ratio(decode, run.rate("decode.node")),
            ratio(decode, run.rate("decode.openai_python")),
            rate_cell(encode),
            ratio(encode, run.rate("encode.node")),
            ratio(encode, run.rate("encode.openai_python")),
        );
    }
    let decode = run.rate("decode.reelthyme");
    let node = run.rate("decode.node");
    let _ = writeln!(
        out,
        "\nGoal: ≥ 3 M decoded events/s/core and ≥ 3× Node; encode ≥ 3× Node. This run: \
         decode {} ({} Node), encode {} Node.\n",
        rate_cell(decode),
        ratio(decode, node),
        ratio(run.rate("encode.reelthyme"), run.rate("encode.node")),
    );

    let _ = writeln!(out, "## Scale: concurrent sessions on one client core\n");
    let _ = writeln!(
        out,
        "Each session: the facade (`reelthyme::connect`, WebSocket, VAD off) sending 40 ms \
         appends of 24 kHz speech every 40 ms and asking for the next response as soon as one \
         is done, while the simulator (another process, another core) streams 20 ms \
         `response.output_audio.delta`s at real time; each delta is decoded into samples. \
         Delay: the simulator's wall clock when it emitted the delta (carried in the event id, \
         `SimConfig::stamp_event_ids`, a bench-only mode) to the client's when the event came \
         out of the session's stream. CPU and RSS are the client process's, over the \
         measured window.\n"
    );
    let _ = writeln!(
        out,
        "| sessions | client CPU (% of a core) | CPU / session | RSS / session | p50 | p99 | p99.9 | deltas/s/session | simulator CPU | errors |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for f in &run.scale {
        let get = |k: &str| f.get(k).unwrap_or("–").to_owned();
        let _ = writeln!(
            out,
            "| {} | {} % | {} % | {} KiB | {} ms | {} ms | {} ms | {} | {} % | {} |",
            get("sessions"),
            get("client_cpu_pct"),
            get("client_cpu_pct_per_session"),
            get("rss_kib_per_session"),
            get("p50_ms"),
            get("p99_ms"),
            get("p999_ms"),
            get("deltas_per_session_s"),
            get("sim_cpu_pct"),
            get("errors"),
        );
    }
    match largest_within_goal(&run.scale) {
        Some(f) => {
            let _ = writeln!(
                out,
                "\nLargest N with p99 ≤ {P99_GOAL_MS} ms on one client core: **{}** sessions \
                 ({} KiB RSS and {} % of a core each). Goal: ≥ 1,000 sessions at ≤ 150 KiB each.\n",
                f.get("sessions").unwrap_or("?"),
                f.get("rss_kib_per_session").unwrap_or("?"),
                f.get("client_cpu_pct_per_session").unwrap_or("?"),
            );
        }
        None => {
            let _ = writeln!(out, "\nNo session count met p99 ≤ {P99_GOAL_MS} ms.\n");
        }
    }
    let _ = writeln!(
        out,
        "![p50 and p99 delay and client CPU against sessions](scaling.svg)\n"
    );

    render_sdk_scale(&mut out, &run.sdk_scale);
    render_audio(&mut out, &run.audio);

    let others: Vec<&Figure> = run
        .figures
        .iter()
        .filter(|f| {
            !f.name.starts_with("decode.")
                && !f.name.starts_with("encode.")
                && f.name != "codec.fixture"
        })
        .collect();
    if !others.is_empty() {
        let _ = writeln!(out, "## Other benchmarks\n");
        let _ = writeln!(out, "| benchmark | figures |");
        let _ = writeln!(out, "|---|---|");
        for f in others {
            let fields: Vec<String> = f.fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(out, "| `{}` | {} |", f.name, fields.join(" "));
        }
        let _ = writeln!(out);
    }
    if !run.notes.is_empty() {
        let _ = writeln!(out, "## Notes of this run\n");
        for note in &run.notes {
            let _ = writeln!(out, "- {note}");
        }
        let _ = writeln!(out);
    }
    if !notes.trim().is_empty() {
        let _ = writeln!(out, "{}", notes.trim_end());
    }
    out
}

/// The "reelthyme vs openai-python" scale comparison (nothing when it did not run).
fn render_sdk_scale(out: &mut String, pairs: &[(Figure, Option<Figure>)]) {
    if pairs.is_empty() {
        return;
    }
    let _ = writeln!(out, "## Scale: reelthyme vs openai-python at equal N\n");
    let _ = writeln!(
        out,
        "The same full-duplex work (VAD off, a 40 ms append encoded every 40 ms, the next \
         out-of-band response as soon as one is done, every delta decoded into samples) by \
         the official SDK (`AsyncOpenAI(...).realtime.connect`, unmodified, one asyncio loop: \
         `benchmarks/peers/scale_sdk.py`), each size right after reelthyme's at the same size, \
         on the same client core against the same simulator process. Delay as above (the \
         stamped event id → the event out of the SDK's iterator; the SDK's quantiles are \
         exact, reelthyme's are 50 µs bucket upper bounds).\n"
    );
    let _ = writeln!(
        out,
        "| sessions | CPU / session: reelthyme | openai-python | openai-python ÷ reelthyme | p99: reelthyme | openai-python | RSS / session: reelthyme | openai-python | deltas/s/session: reelthyme | openai-python | errors |"
    );
    let _ = writeln!(
        out,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (ours, theirs) in pairs {
        let get = |f: Option<&Figure>, k: &str| f.and_then(|f| f.get(k)).unwrap_or("–").to_owned();
        let theirs = theirs.as_ref();
        let cpu = |f: Option<&Figure>| f.and_then(|f| f.number("client_cpu_pct_per_session"));
        let errors = format!("{} / {}", get(Some(ours), "errors"), get(theirs, "errors"));
        let _ = writeln!(
            out,
            "| {} | {} % | {} % | {} | {} ms | {} ms | {} KiB | {} KiB | {} | {} | {errors} |",
            get(Some(ours), "sessions"),
            get(Some(ours), "client_cpu_pct_per_session"),
            get(theirs, "client_cpu_pct_per_session"),
            ratio(cpu(theirs), cpu(Some(ours))),
            get(Some(ours), "p99_ms"),
            get(theirs, "p99_ms"),
            get(Some(ours), "rss_kib_per_session"),
            get(theirs, "rss_kib_per_session"),
            get(Some(ours), "deltas_per_session_s"),
            get(theirs, "deltas_per_session_s"),
        );
    }
    let _ = writeln!(out);
}

/// The "Audio path latencies" section (nothing when the harness did not run).
fn render_audio(out: &mut String, audio: &[Figure]) {
    if audio.is_empty() {
        return;
    }
    let _ = writeln!(out, "## Audio path latencies\n");
    let _ = writeln!(
        out,
        "On the controlled clocks (`reelthyme-bench audio`, `crates/bench/src/audio_path.rs`): \
         a \"microphone\" driven with `CaptureClock::push` and a \"speaker\" with \
         `Clock::pull`, one 10 ms callback every 10 ms each (the same callback code as a cpal \
         stream, 24 kHz mono so nothing is resampled), through the facade \
         (`capture_audio_with_clock`, `stream_to`) against the simulator on loopback, in one \
         process not pinned to a core. The wire is a loopback TCP relay that stamps each \
         client `input_audio_buffer.append` frame when its last byte arrives; \"received\" is \
         the transport's read time of the frame (`LayerContext::received_at`). Device-side \
         figures include the wait for the next 10 ms callback.\n"
    );
    let _ = writeln!(out, "| path | samples | p50 | p99 | max |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    let rows = [
        (
            "audio.capture_to_wire",
            "capture callback completing a 40 ms chunk → its append on the wire",
        ),
        (
            "audio.first_delta_to_device",
            "first `response.output_audio.delta` of an answer received → its first sample \
             taken by the device (the device idle when it arrived)",
        ),
        (
            "audio.delta_to_device",
            "every delta received → its first sample taken by the device (deltas paced at \
             real time: includes the wait behind the audio still queued)",
        ),
        (
            "audio.speech_started_to_silent",
            "`input_audio_buffer.speech_started` received while an answer plays → the first \
             silent device callback (the cut honoured)",
        ),
    ];
    for (name, label) in rows {
        let Some(f) = audio.iter().find(|f| f.name == name) else {
            continue;
        };
        let get = |k: &str| f.get(k).unwrap_or("–").to_owned();
        let _ = writeln!(
            out,
            "| {label} | {} | {} ms | {} ms | {} ms |",
            get("samples"),
            get("p50_ms"),
            get("p99_ms"),
            get("max_ms"),
        );
    }
    let _ = writeln!(out);
}

/// A small SVG of the scale ramp: p50 and p99 delay (left axis, ms) and client CPU (right
/// axis, % of a core) against sessions. Hand-written: three polylines and their axes do not
/// need a plotting crate (and its fonts) in the build.
pub fn scaling_svg(scale: &[Figure]) -> String {
    let (w, h, left, right, top, bottom) = (640.0, 360.0, 60.0, 60.0, 30.0, 50.0);
    let points: Vec<(f64, f64, f64, f64)> = scale
        .iter()
        .filter_map(|f| {
            Some((
                f.number("sessions")?,
                f.number("p50_ms").unwrap_or(f64::NAN),
                f.number("p99_ms").unwrap_or(f64::NAN),
                f.number("client_cpu_pct").unwrap_or(f64::NAN),
            ))
        })
        .collect();
    let max_n = points.iter().map(|p| p.0).fold(1.0, f64::max);
    let max_ms = points
        .iter()
        .map(|p| p.2)
        .filter(|v| v.is_finite())
        .fold(P99_GOAL_MS * 2.0, f64::max)
        .min(200.0);
    let x = |n: f64| left + (w - left - right) * n / max_n;
    let y_ms = |ms: f64| top + (h - top - bottom) * (1.0 - (ms.min(max_ms) / max_ms));
    let y_pct = |pct: f64| top + (h - top - bottom) * (1.0 - pct.min(100.0) / 100.0);
    let line = |values: Vec<(f64, f64)>| -> String {
        values
            .into_iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(a, b)| format!("{a:.1},{b:.1}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let (x0, x1, y0, y1) = (left, w - right, top, h - bottom);
    let _ = writeln!(
        svg,
        r#"<path d="M{x0},{y0} V{y1} H{x1} V{y0}" fill="none" stroke="black"/>"#
    );
    // The goal line.
    let goal = y_ms(P99_GOAL_MS);
    let _ = writeln!(
        svg,
        r##"<line x1="{x0}" y1="{goal:.1}" x2="{x1}" y2="{goal:.1}" stroke="#999" stroke-dasharray="4 4"/><text x="{:.1}" y="{:.1}" fill="#666">p99 goal {P99_GOAL_MS} ms</text>"##,
        x0 + 4.0,
        goal - 4.0
    );
    for k in 0..=4 {
        let ms = max_ms * f64::from(k) / 4.0;
        let pct = 100.0 * f64::from(k) / 4.0;
        let yy = y_ms(ms);
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{ms:.0}</text><text x="{:.1}" y="{:.1}">{pct:.0}%</text>"#,
            x0 - 6.0,
            yy + 4.0,
            x1 + 6.0,
            yy + 4.0
        );
    }
    for p in &points {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{:.0}</text>"#,
            x(p.0),
            y1 + 16.0,
            p.0
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">concurrent sessions (one client core)</text>"#,
        (x0 + x1) / 2.0,
        h - 12.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="12" y="{:.1}" transform="rotate(-90 12 {:.1})" text-anchor="middle">delay, simulator send → client receipt (ms)</text>"#,
        (y0 + y1) / 2.0,
        (y0 + y1) / 2.0
    );
    let series = [
        (
            "p99",
            "#d62728",
            line(points.iter().map(|p| (x(p.0), y_ms(p.2))).collect()),
        ),
        (
            "p50",
            "#1f77b4",
            line(points.iter().map(|p| (x(p.0), y_ms(p.1))).collect()),
        ),
        (
            "client CPU",
            "#2ca02c",
            line(points.iter().map(|p| (x(p.0), y_pct(p.3))).collect()),
        ),
    ];
    for (i, (label, color, pts)) in series.iter().enumerate() {
        let _ = writeln!(
            svg,
            r#"<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>"#
        );
        let lx = x0 + 10.0 + 110.0 * i as f64;
        let _ = writeln!(
            svg,
            r#"<line x1="{lx}" y1="16" x2="{:.1}" y2="16" stroke="{color}" stroke-width="2"/><text x="{:.1}" y="20">{label}</text>"#,
            lx + 20.0,
            lx + 24.0
        );
    }
    let _ = writeln!(svg, "</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fig(line: &str) -> Figure {
        parse_line(line).unwrap()
    }

    #[test]
    fn harness_lines_and_criterion_lines_are_figures() {
        let f = fig("decode.node events_per_s=950000");
        assert_eq!(f.name, "decode.node");
        assert_eq!(f.number("events_per_s"), Some(950_000.0));
        let c = fig("test decode_x/reelthyme ... bench:       1,315 ns/iter (+/- 38)");
        assert_eq!(c.name, "criterion.decode_x/reelthyme");
        assert_eq!(c.number("ns_per_iter"), Some(1315.0));
        let w = fig("webrtc_setup runs=20 p50_ms=41.2 p99_ms=80.0");
        assert_eq!(w.get("runs"), Some("20"));
        for not_a_figure in [
            "",
            "Benchmarking x: Warming up",
            "a=b c=d",
            "name",
            "x k=v junk",
        ] {
            assert_eq!(parse_line(not_a_figure), None, "{not_a_figure:?}");
        }
    }

    fn sample_run() -> Run {
        let figures = [
            "decode.reelthyme events_per_s=3000000",
            "decode.node events_per_s=1000000",
            "decode.openai_python events_per_s=15000",
            "encode.reelthyme events_per_s=1200000",
            "encode.node events_per_s=400000",
            "codec.fixture delta_bytes=1514 append_bytes=1327",
            "aec erle_db=25.1",
        ];
        let scale = [
            "scale sessions=100 p50_ms=0.3 p99_ms=2.0 client_cpu_pct=10 rss_kib_per_session=90 errors=0",
            "scale sessions=500 p50_ms=0.5 p99_ms=8.0 client_cpu_pct=50 rss_kib_per_session=95 errors=0",
            "scale sessions=900 p50_ms=3.0 p99_ms=40.0 client_cpu_pct=98 rss_kib_per_session=96 errors=0",
        ];
        Run {
            machine: Machine {
                nproc: "2".into(),
                ..Machine::default()
            },
            figures: figures.iter().map(|l| fig(l)).collect(),
            scale: scale.iter().map(|l| fig(l)).collect(),
            sdk_scale: vec![(
                fig("scale sessions=10 client_cpu_pct_per_session=0.05 p99_ms=1.0 errors=0"),
                Some(fig(
                    "scale.openai_python sessions=10 client_cpu_pct_per_session=2.0 p99_ms=3.0 errors=0",
                )),
            )],
            audio: vec![fig(
                "audio.speech_started_to_silent samples=20 p50_ms=5.1 p99_ms=9.8 max_ms=9.8",
            )],
            notes: vec!["a note".into()],
        }
    }

    #[test]
    fn results_carry_same_run_ratios_and_the_largest_n_within_the_goal() {
        let run = sample_run();
        let text = render(&run, "## What the profile showed\n\nthings");
        assert!(
            text.contains("| 3.00 M/s | 3.00× | 200.00× | 1.20 M/s | 3.00× | – |"),
            "{text}"
        );
        assert!(text.contains("decode 3.00 M/s (3.00× Node)"), "{text}");
        assert!(text.contains("**500** sessions"), "{text}");
        assert!(text.contains("`aec` | erle_db=25.1"), "{text}");
        assert!(text.contains("- a note"));
        assert!(text.ends_with("things\n"));
        assert!(text.contains("scaling.svg"));
        assert!(text.contains("## Audio path latencies"), "{text}");
        assert!(
            text.contains("(the cut honoured) | 20 | 5.1 ms | 9.8 ms | 9.8 ms |"),
            "{text}"
        );
        assert!(
            text.contains("| 10 | 0.05 % | 2.0 % | 40.00× | 1.0 ms | 3.0 ms |"),
            "{text}"
        );
        // Rows of paths that did not run are left out.
        assert!(!text.contains("append on the wire |"), "{text}");
    }

    #[test]
    fn the_largest_n_needs_no_errors() {
        let mut run = sample_run();
        run.scale[1].fields.insert("errors".into(), "3".into());
        assert_eq!(
            largest_within_goal(&run.scale).and_then(|f| f.get("sessions")),
            Some("100")
        );
    }

    #[test]
    fn the_svg_plots_every_size() {
        let svg = scaling_svg(&sample_run().scale);
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 3);
        // Three points in each series.
        let p99 = svg
            .lines()
            .find(|l| l.contains("#d62728\" stroke-width"))
            .unwrap();
        assert_eq!(
            p99.split(' ').filter(|t| t.contains(',')).count(),
            3,
            "{p99}"
        );
        for n in [">100<", ">500<", ">900<"] {
            assert!(svg.contains(n), "{n}");
        }
    }

    #[test]
    fn quick_runs_use_small_sizes() {
        let root = Path::new("/r");
        let args = parse_args(root, &["--quick".into()]).unwrap();
        assert_eq!(args.sessions, [10, 20]);
        assert_eq!(args.sdk_sessions, [10]);
        let args = parse_args(root, &["--sdk-sessions".into(), "none".into()]).unwrap();
        assert!(args.sdk_sessions.is_empty());
        assert_eq!(args.sessions.len(), 9);
        let args = parse_args(
            root,
            &["--sessions".into(), "5, 7".into(), "--no-webrtc".into()],
        )
        .unwrap();
        assert_eq!(args.sessions, [5, 7]);
        assert!(!args.webrtc);
        assert!(parse_args(root, &["--bogus".into()]).is_err());
    }
}
