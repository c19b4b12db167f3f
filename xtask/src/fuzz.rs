//! `cargo xtask fuzz [--seconds N] [--sanitizer S] [--no-sim] [--seed N] [--seed-only] [TARGET…]`: seed the
//! corpora from the spec examples, build the cargo-fuzz targets of `crates/fuzz`, run each
//! for N seconds (one libFuzzer process at a time) and print the executions per target.
//!
//! Works on the stable toolchain: cargo-fuzz passes nightly-only flags (`-Z sanitizer`,
//! `-Cpasses=sancov-module`, …), which stable rustc accepts under `RUSTC_BOOTSTRAP=1`, and
//! stable ships the sanitizer runtimes. The fuzz crate is a workspace of its own with its own
//! target dir (`target/fuzz`), so none of this touches the main build.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use reelthyme_schema::ClientEvent;
use serde_json::{Value, json};

use crate::root;

/// Every target in `crates/fuzz/fuzz_targets`, in the order they run.
const TARGETS: &[&str] = &[
    "server_event",
    "client_event",
    "beta",
    "audio",
    "check_line",
    "sim_recording",
    "sim_session",
];

const DEFAULT_SECONDS: u64 = 300;

struct Args {
    seconds: u64,
    sanitizer: String,
    seed_only: bool,
    /// Leave out the simulator's targets (and the simulator from the build).
    no_sim: bool,
    /// libFuzzer's random seed (default: a new one each run).
    seed: Option<u64>,
    targets: Vec<String>,
}

fn parse_args(args: &[String]) -> Result<Args> {
    let mut parsed = Args {
        seconds: DEFAULT_SECONDS,
        sanitizer: "address".to_owned(),
        seed_only: false,
        no_sim: false,
        seed: None,
        targets: Vec::new(),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                let n = args.next().context("--seconds needs a number")?;
                parsed.seconds = n.parse().with_context(|| format!("--seconds {n}"))?;
            }
            "--sanitizer" => {
                parsed.sanitizer = args.next().context("--sanitizer needs a name")?.clone();
            }
            "--seed-only" => parsed.seed_only = true,
            "--no-sim" => parsed.no_sim = true,
            "--seed" => {
                let n = args.next().context("--seed needs a number")?;
                parsed.seed = Some(n.parse().with_context(|| format!("--seed {n}"))?);
            }
            flag if flag.starts_with('-') => bail!(
                "unknown option {flag}; usage: cargo xtask fuzz [--seconds N] [--sanitizer address|none] [--no-sim] [--seed N] [--seed-only] [TARGET…]"
            ),
            target if TARGETS.contains(&target) => parsed.targets.push(target.to_owned()),
            target => bail!(
                "no fuzz target {target}; the targets are {}",
                TARGETS.join(", ")
            ),
        }
    }
    if parsed.targets.is_empty() {
        parsed.targets = TARGETS.iter().map(|t| (*t).to_owned()).collect();
    }
    if parsed.no_sim {
        parsed.targets.retain(|t| !t.starts_with("sim_"));
    }
    Ok(parsed)
}

pub(crate) fn fuzz(args: &[String]) -> Result<()> {
    let args = parse_args(args)?;
    let fuzz_dir = root().join("crates/fuzz");
    check_targets_listed(&fuzz_dir)?;
    let seeds = write_seeds(&fuzz_dir)?;
    println!("seeded {seeds} inputs into crates/fuzz/corpus/ and wrote the dictionary");
    if args.seed_only {
        return Ok(());
    }
    ensure_cargo_fuzz()?;

    let build = Instant::now();
    let status = cargo_fuzz("build", &args)
        .status()
        .context("running cargo fuzz build")?;
    if !status.success() {
        bail!("cargo fuzz build failed");
    }
    println!(
        "built the fuzz targets in {:.0} s",
        build.elapsed().as_secs_f64()
    );

    let mut results = Vec::new();
    for target in &args.targets {
        results.push(run_target(&fuzz_dir, target, &args)?);
    }

    println!(
        "\n{:<16} {:>8} {:>14} {:>10}  result",
        "target", "seconds", "executions", "exec/s"
    );
    let mut total = 0;
    let mut failed = Vec::new();
    for r in &results {
        total += r.executions;
        println!(
            "{:<16} {:>8.0} {:>14} {:>10.0}  {}",
            r.target,
            r.seconds,
            r.executions,
            r.executions as f64 / r.seconds.max(1e-9),
            if r.ok { "ok" } else { "FAILED" }
        );
        if !r.ok {
            failed.push(r.target.as_str());
        }
    }
    println!("{:<16} {:>8} {:>14}", "total", "", total);
    if !failed.is_empty() {
        bail!(
            "fuzz targets failed: {} (reproducers in crates/fuzz/artifacts/<target>/; \
             rerun one with `RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir crates/fuzz --target-dir target/fuzz <target> <file>`)",
            failed.join(", ")
        );
    }
    Ok(())
}

/// A `cargo fuzz <subcommand>` for the fuzz crate, on whatever toolchain runs xtask.
fn cargo_fuzz(subcommand: &str, args: &Args) -> Command {
    let root = root();
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command
        .current_dir(&root)
        .env("RUSTC_BOOTSTRAP", "1")
        .args(["fuzz", subcommand, "--fuzz-dir"])
        .arg(root.join("crates/fuzz"))
        .arg("--target-dir")
        .arg(root.join("target/fuzz"))
        .args(["--sanitizer", &args.sanitizer]);
    if args.no_sim {
        command.arg("--no-default-features");
    }
    command
}

fn ensure_cargo_fuzz() -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let installed = Command::new(&cargo)
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if installed {
        return Ok(());
    }
    println!("installing cargo-fuzz (cargo install cargo-fuzz --locked)");
    let status = Command::new(&cargo)
        .args(["install", "cargo-fuzz", "--locked"])
        .status()?;
    if !status.success() {
        bail!("cargo install cargo-fuzz failed");
    }
    Ok(())
}

struct Outcome {
    target: String,
    seconds: f64,
    executions: u64,
    ok: bool,
}

fn run_target(fuzz_dir: &Path, target: &str, args: &Args) -> Result<Outcome> {
    println!("\n== fuzz {target} for {} s", args.seconds);
    let corpus = fuzz_dir.join("corpus").join(target);
    let artifacts = fuzz_dir.join("artifacts").join(target);
    std::fs::create_dir_all(&artifacts)?;
    let started = Instant::now();
    let mut child = cargo_fuzz("run", args)
        .arg(target)
        .arg(&corpus)
        .arg("--")
        .arg(format!("-max_total_time={}", args.seconds))
        .arg(format!(
            "-dict={}",
            fuzz_dir.join("corpus/realtime.dict").display()
        ))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        // A slow input is a bug too (quadratic parsing, a hang): fail on 10 s.
        .arg("-timeout=10")
        .arg("-rss_limit_mb=2048")
        .arg("-print_final_stats=1")
        .args(args.seed.map(|seed| format!("-seed={seed}")))
        .stderr(Stdio::piped())
        .spawn()
        .context("running cargo fuzz run")?;
    let stderr = child.stderr.take().expect("piped");
    let mut executions = 0;
    let mut last_status = String::new();
    let mut in_dictionary = false;
    for line in BufReader::new(stderr).lines() {
        let line = line?;
        if let Some(n) = line.strip_prefix("stat::number_of_executed_units:") {
            executions = n.trim().parse().unwrap_or(0);
        }
        // libFuzzer's progress lines (`#123 NEW cov: …`) are thousands, and its closing
        // "recommended dictionary" is noise here: keep the last progress line only.
        if line.starts_with("###### Recommended dictionary") {
            in_dictionary = true;
        } else if line.starts_with("###### End of recommended dictionary") {
            in_dictionary = false;
        } else if line.starts_with('#') {
            last_status = line;
        } else if !in_dictionary {
            eprintln!("{line}");
        }
    }
    let status = child.wait()?;
    if !last_status.is_empty() {
        eprintln!("last: {last_status}");
    }
    if executions == 0 {
        // A crash ends the run before the final stats; the progress line still counts.
        executions = last_status
            .trim_start_matches('#')
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
    }
    Ok(Outcome {
        target: target.to_owned(),
        seconds: started.elapsed().as_secs_f64(),
        executions,
        ok: status.success(),
    })
}

fn check_targets_listed(fuzz_dir: &Path) -> Result<()> {
    let mut on_disk = BTreeSet::new();
    for entry in std::fs::read_dir(fuzz_dir.join("fuzz_targets"))? {
        let path = entry?.path();
        if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
            on_disk.insert(stem.to_owned());
        }
    }
    let listed: BTreeSet<String> = TARGETS.iter().map(|t| (*t).to_owned()).collect();
    if on_disk != listed {
        bail!(
            "xtask/src/fuzz.rs TARGETS {listed:?} differ from crates/fuzz/fuzz_targets {on_disk:?}"
        );
    }
    Ok(())
}

/// Writes the seed corpora (each spec example as one input, shaped for its target) and the
/// dictionary. Deterministic: the same fixtures give the same files, so a run can be
/// reproduced; what libFuzzer adds to the corpus directories is left alone.
fn write_seeds(fuzz_dir: &Path) -> Result<usize> {
    let fixture = root().join("crates/testkit/fixtures/protocol/openapi_examples.jsonl");
    let text = std::fs::read_to_string(&fixture)
        .with_context(|| format!("reading {}", fixture.display()))?;
    let corpus = fuzz_dir.join("corpus");
    let mut written = 0;
    let mut seed = |target: &str, name: &str, bytes: &[u8]| -> Result<()> {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("seed-{name}")), bytes)?;
        written += 1;
        Ok(())
    };

    let mut tokens = BTreeSet::new();
    let mut recording =
        vec![json!({"reelthyme_recording": 1, "model": "gpt-realtime"}).to_string()];
    let mut client_events = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let row: Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}", fixture.display(), index + 1))?;
        let example = &row["example"];
        let direction = row["direction"].as_str().unwrap_or_default();
        let tag = example["type"].as_str().unwrap_or("untyped");
        let name = format!("{index:03}-{tag}");
        let event = example.to_string();
        match direction {
            "server" => seed("server_event", &name, event.as_bytes())?,
            "client" => {
                seed("client_event", &name, event.as_bytes())?;
                seed("sim_session", &name, event.as_bytes())?;
                client_events.push(event.clone());
            }
            other => bail!("{}:{}: direction {other:?}", fixture.display(), index + 1),
        }
        seed("beta", &name, event.as_bytes())?;
        // check_line's first byte picks the options; cycle through all of them.
        let mut line_seed = vec![(index % 64) as u8];
        line_seed.extend_from_slice(line.as_bytes());
        seed("check_line", &name, &line_seed)?;
        recording.push(
            json!({"t_ms": index * 20, "direction": direction, "event": example}).to_string(),
        );
        collect_tokens(example, &mut tokens);
        for key in ["delta", "audio"] {
            if let Some(audio) = example.get(key).and_then(Value::as_str) {
                let mut audio_seed = vec![index as u8];
                audio_seed.extend_from_slice(audio.as_bytes());
                seed("audio", &name, &audio_seed)?;
            }
        }
    }
    seed(
        "sim_recording",
        "spec-examples",
        recording.join("\n").as_bytes(),
    )?;
    seed("sim_recording", "header-only", recording[0].as_bytes())?;
    seed(
        "sim_session",
        "all-client-examples",
        client_events.join("\n").as_bytes(),
    )?;
    let turn = [
        json!({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["audio"]}}),
        ClientEvent::audio_append(&[0, 1000, -1000, 32767, -32768]).to_value(),
        ClientEvent::audio_commit().to_value(),
        ClientEvent::response_create().to_value(),
        ClientEvent::user_text("hello").to_value(),
        ClientEvent::response_create().to_value(),
        ClientEvent::truncate("item_1", 10).to_value(),
        ClientEvent::response_cancel().to_value(),
    ];
    let turn: Vec<String> = turn.iter().map(Value::to_string).collect();
    seed("sim_session", "voice-turn", turn.join("\n").as_bytes())?;

    let samples: Vec<u8> = (0..480_i32)
        .flat_map(|i| ((i * 137 % 65536 - 32768) as i16).to_le_bytes())
        .collect();
    let pcm = reelthyme_schema::Base64Audio::from_bytes(&samples).into_string();
    for (i, text) in [
        "",
        "AAD/fw==",
        "==",
        "AAAA",
        "AAE=",
        "Base64EncodedAudioData",
        "AA-_",
        &pcm,
    ]
    .iter()
    .enumerate()
    {
        let mut audio_seed = vec![i as u8];
        audio_seed.extend_from_slice(text.as_bytes());
        seed("audio", &format!("hand-{i}"), &audio_seed)?;
    }

    for tag in ClientEvent::TYPES
        .iter()
        .chain(reelthyme_schema::ServerEvent::TYPES)
    {
        tokens.insert((*tag).to_owned());
    }
    let mut dict =
        String::from("# Event types, field names and string values of the spec examples.\n");
    for token in [
        "{",
        "}",
        "[",
        "]",
        ":",
        ",",
        "null",
        "true",
        "false",
        "\"type\":",
        "==",
    ] {
        writeln!(dict, "{}", dict_entry(token))?;
    }
    for token in &tokens {
        writeln!(dict, "{}", dict_entry(&format!("\"{token}\"")))?;
    }
    std::fs::write(corpus.join("realtime.dict"), dict)?;
    Ok(written)
}

/// Object keys, and short string values (event and item types, enum values), of a JSON tree.
fn collect_tokens(value: &Value, tokens: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                tokens.insert(key.clone());
                collect_tokens(value, tokens);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_tokens(v, tokens)),
        Value::String(s) if s.len() <= 40 && !s.contains(' ') => {
            tokens.insert(s.clone());
        }
        _ => {}
    }
}

/// A libFuzzer dictionary line: the token quoted, with `\`, `"` and non-printables escaped.
fn dict_entry(token: &str) -> String {
    let mut entry = String::from("\"");
    for byte in token.bytes() {
        match byte {
            b'\\' | b'"' => {
                entry.push('\\');
                entry.push(byte as char);
            }
            0x20..=0x7e => entry.push(byte as char),
            _ => {
                let _ = write!(entry, "\\x{byte:02X}");
            }
        }
    }
    entry.push('"');
    entry
}
