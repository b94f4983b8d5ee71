//! `valori`: inspect, verify, list the history of, and travel in time through Valori
//! databases. Every subcommand translates: the work is the engine's public API
//! ([`valori_engine::History`], [`valori_engine::Engine`], [`valori_engine::Export`]).
//!
//! Exit codes (docs/CLI.md): 0 success, 1 damage found (or a hash that does not match),
//! 2 usage error, 3 not found, 4 database in use, 5 any other failure.

#![forbid(unsafe_code)]

mod describe;
mod input;

use clap::{CommandFactory, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use valori_engine::valori_kernel::{ErrorCode, Kernel};
use valori_engine::{Durability, Engine, Error, Export, History, Options};

/// Prints a line on standard output. A closed pipe (`valori log DIR | head`) ends the output
/// quietly, not with a panic.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::emit(format_args!($($arg)*))
    };
}

fn emit(args: std::fmt::Arguments<'_>) {
    // A write error (the reader went away) is not the tool's failure: the rest is dropped.
    let _ = writeln!(std::io::stdout().lock(), "{args}");
}

/// Exit code: the database or file is damaged, or a hash does not match.
const EXIT_DAMAGED: u8 = 1;
/// Exit code: bad arguments.
const EXIT_USAGE: u8 = 2;
/// Exit code: no such database, record, point in history or tag.
const EXIT_NOT_FOUND: u8 = 3;
/// Exit code: another process holds the database.
const EXIT_BUSY: u8 = 4;
/// Exit code: anything else (I/O errors, ...).
const EXIT_FAILED: u8 = 5;

#[derive(Parser)]
#[command(
    name = "valori",
    version,
    about = "Inspect, verify and travel through the history of Valori databases",
    long_about = "Inspect, verify and travel through the history of Valori databases.\n\n\
        A database is a directory (WAL segments, snapshots, a lock). Read commands change no \
        file; a database another process has open is refused (exit code 4).\n\n\
        Exit codes: 0 success, 1 damage found or hash mismatch, 2 usage error, 3 not found, \
        4 database in use, 5 other failure."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Dimension, metric, counts, files and sizes, sequence number and state hash.
    Info {
        /// The database directory.
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Read every snapshot and WAL segment: record checks, hash chain, replay, stored hashes.
    Verify {
        /// The database directory.
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The history: sequence number, command, affected ids, bytes, chain value; and the tags.
    Log {
        /// The database directory.
        dir: PathBuf,
        /// First sequence number to list (default: the oldest retained).
        #[arg(long)]
        from: Option<u64>,
        /// At most this many commands.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print JSON (one object: commands and tags).
        #[arg(long)]
        json: bool,
    },
    /// One logged command in full.
    Show {
        /// The database directory.
        dir: PathBuf,
        /// Its sequence number.
        seq: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The state hash now, or at a past sequence number or tag.
    Hash {
        /// The database directory.
        dir: PathBuf,
        /// A sequence number or a tag name (default: the latest).
        #[arg(long)]
        at: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the state at a past sequence number or tag as a new database.
    Checkout {
        /// The database directory.
        dir: PathBuf,
        /// A sequence number or a tag name.
        #[arg(long)]
        at: String,
        /// The new database's directory (must hold no database).
        #[arg(long)]
        out: PathBuf,
    },
    /// Name a point in the history (pinned against retention), or remove a name.
    Tag {
        /// The database directory.
        dir: PathBuf,
        /// The tag name: 1 to 64 ASCII letters, digits, '.', '_' or '-'.
        name: String,
        /// The sequence number it names (default: the latest).
        #[arg(long, conflicts_with = "delete")]
        at: Option<u64>,
        /// Remove the tag instead.
        #[arg(long)]
        delete: bool,
    },
    /// Records, metadata and graph items added, removed and changed between two states.
    ///
    /// Each side is a database directory, optionally followed by @SEQ or @TAG
    /// (e.g. `valori diff db@10 db@20`).
    Diff {
        /// The older side: DIR, DIR@SEQ or DIR@TAG.
        a: String,
        /// The newer side: DIR, DIR@SEQ or DIR@TAG.
        b: String,
        /// Print JSON (every id).
        #[arg(long)]
        json: bool,
    },
    /// Write the database's export (docs/FORMAT.md §12): newest snapshot and the log after it.
    Export {
        /// The database directory.
        dir: PathBuf,
        /// The export file to write.
        file: PathBuf,
    },
    /// Create a database from an export (checked against its hash before anything is written).
    Import {
        /// The export file.
        file: PathBuf,
        /// The new database's directory (must hold no database).
        dir: PathBuf,
    },
    /// Replay an export and check its state hash (what a cloud verifier runs on a device's log).
    Replay {
        /// The export file.
        file: PathBuf,
        /// The state hash the replay must reach (64 hex digits).
        #[arg(long)]
        expect_hash: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Copy the intact prefix of a damaged database into a new one.
    Salvage {
        /// The damaged database's directory (not changed).
        dir: PathBuf,
        /// The new database's directory (must hold no database).
        #[arg(long)]
        out: PathBuf,
    },
    /// The k nearest records to a vector.
    Search {
        /// The database directory.
        dir: PathBuf,
        /// The query as a JSON array of numbers.
        #[arg(long, conflicts_with = "npy", required_unless_present = "npy")]
        vector: Option<String>,
        /// The query as a .npy file (float32 or float64; the first row of a 2-D array).
        #[arg(long)]
        npy: Option<PathBuf>,
        /// How many hits.
        #[arg(long, default_value_t = 10)]
        k: u32,
        /// Only records with this tag.
        #[arg(long)]
        tag: Option<u64>,
        /// Search the state at this sequence number or tag (default: the latest).
        #[arg(long)]
        at: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One record: tag, metadata and vector.
    Get {
        /// The database directory.
        dir: PathBuf,
        /// The record id.
        id: u64,
        /// Read the state at this sequence number or tag (default: the latest).
        #[arg(long)]
        at: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// A failure, with the exit code it gives.
struct Failure {
    code: u8,
    message: String,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        let code = match e.code() {
            ErrorCode::Corrupt => EXIT_DAMAGED,
            ErrorCode::NotFound => EXIT_NOT_FOUND,
            ErrorCode::Busy => EXIT_BUSY,
            ErrorCode::InvalidInput | ErrorCode::Dimension => EXIT_USAGE,
            _ => EXIT_FAILED,
        };
        let hint = match e.hint() {
            Some(valori_engine::Hint::Salvage) => {
                "; `valori salvage DIR --out NEW_DIR` copies the intact prefix"
            }
            Some(valori_engine::Hint::Create) => "",
            Some(_) | None => "",
        };
        Failure {
            code,
            message: format!("{}{hint}", e.detail()),
        }
    }
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        code: EXIT_USAGE,
        message: message.into(),
    }
}

fn io_failure(what: &str, path: &Path, e: &std::io::Error) -> Failure {
    Failure {
        code: if e.kind() == std::io::ErrorKind::NotFound {
            EXIT_NOT_FOUND
        } else {
            EXIT_FAILED
        },
        message: format!("{what} {}: {e}", path.display()),
    }
}

type Outcome = Result<(), Failure>;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            let _ = writeln!(std::io::stderr().lock(), "valori: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn run(cmd: Cmd) -> Outcome {
    match cmd {
        Cmd::Info { dir, json } => info(&dir, json),
        Cmd::Verify { dir, json } => verify(&dir, json),
        Cmd::Log {
            dir,
            from,
            limit,
            json,
        } => log(&dir, from, limit, json),
        Cmd::Show { dir, seq, json } => show(&dir, seq, json),
        Cmd::Hash { dir, at, json } => hash(&dir, at.as_deref(), json),
        Cmd::Checkout { dir, at, out } => {
            let h = History::open(&dir)?;
            let seq = resolve(&h, &at)?;
            let hash = h.checkout(seq, &out)?;
            say!(
                "{}: the state at sequence number {seq}, state hash {}",
                out.display(),
                hex::encode(hash)
            );
            Ok(())
        }
        Cmd::Tag {
            dir,
            name,
            at,
            delete,
        } => {
            let h = History::open(&dir)?;
            if delete {
                h.remove_tag(&name)?;
                say!("removed tag {name}");
            } else {
                let seq = match at {
                    Some(s) => s,
                    None => h.span()?.last,
                };
                h.set_tag(&name, seq)?;
                say!("tag {name} -> sequence number {seq}");
            }
            Ok(())
        }
        Cmd::Diff { a, b, json } => diff(&a, &b, json),
        Cmd::Export { dir, file } => export(&dir, &file),
        Cmd::Import { file, dir } => import(&file, &dir),
        Cmd::Replay {
            file,
            expect_hash,
            json,
        } => replay(&file, expect_hash.as_deref(), json),
        Cmd::Salvage { dir, out } => salvage(&dir, &out),
        Cmd::Search {
            dir,
            vector,
            npy,
            k,
            tag,
            at,
            json,
        } => {
            let query = match (vector, npy) {
                (Some(v), _) => input::json_vector(&v)?,
                (None, Some(p)) => input::npy_vector(&p)?,
                (None, None) => return Err(usage("give --vector or --npy")),
            };
            let (kernel, _) = state(&dir, at.as_deref())?;
            let q = valori_engine::valori_kernel::fxp::to_vec(&query).map_err(Error::from)?;
            let hits = kernel.search_vec(&q, k, tag).map_err(Error::from)?;
            let metric = kernel.config().metric;
            let rows: Vec<Value> = hits
                .iter()
                .map(|h| json!({"id": h.id, "distance": metric.distance_to_f64(h.distance)}))
                .collect();
            if json {
                print_json(&json!({ "hits": rows }));
            } else {
                for h in &hits {
                    say!("{}\t{}", h.id, metric.distance_to_f64(h.distance));
                }
            }
            Ok(())
        }
        Cmd::Get { dir, id, at, json } => {
            let (kernel, _) = state(&dir, at.as_deref())?;
            let Some(r) = kernel.get(id) else {
                return Err(Failure {
                    code: EXIT_NOT_FOUND,
                    message: format!("no record {id} in {}", dir.display()),
                });
            };
            let v = describe::record(&r);
            if json {
                print_json(&v);
            } else {
                print_fields(&v);
            }
            Ok(())
        }
        Cmd::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "valori", &mut script);
            let _ = std::io::stdout().lock().write_all(&script);
            Ok(())
        }
    }
}

/// Prints JSON on one line.
fn print_json(v: &Value) {
    say!("{v}");
}

/// Prints an object's fields as `name: value` lines.
fn print_fields(v: &Value) {
    if let Value::Object(map) = v {
        for (k, v) in map {
            match v {
                Value::String(s) => say!("{k}: {s}"),
                other => say!("{k}: {other}"),
            }
        }
    }
}

/// A field of an object as display text (strings without quotes).
fn field(v: &Value, name: &str) -> String {
    match v.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// A sequence number, or the sequence number of a tag.
fn resolve(h: &History, at: &str) -> Result<u64, Failure> {
    if let Ok(seq) = at.parse::<u64>() {
        return Ok(seq);
    }
    h.tags()?
        .into_iter()
        .find(|t| t.name == at)
        .map(|t| t.seq)
        .ok_or_else(|| Failure {
            code: EXIT_NOT_FOUND,
            message: format!(
                "{at:?} is neither a sequence number nor a tag of {}",
                h.path().display()
            ),
        })
}

/// The state of `dir` at `at` (latest if none), with its sequence number.
fn state(dir: &Path, at: Option<&str>) -> Result<(Kernel<'static>, u64), Failure> {
    let h = History::open(dir)?;
    let seq = match at {
        Some(at) => resolve(&h, at)?,
        None => h.span()?.last,
    };
    Ok((h.state_at(seq)?.0, seq))
}

fn progress_bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

fn info(dir: &Path, json: bool) -> Outcome {
    let h = History::open(dir)?;
    let files = h.files()?;
    let span = h.span()?;
    let (kernel, _) = h.state_at(span.last)?;
    let tags = h.tags()?;
    let config = kernel.config();
    let sum = |v: &[(u64, String, u64)]| v.iter().map(|x| x.2).sum::<u64>();
    let v = json!({
        "path": dir.display().to_string(),
        "dim": config.dim,
        "metric": config.metric.to_string(),
        "records": kernel.len(),
        "nodes": kernel.node_count(),
        "edges": kernel.edge_count(),
        "seq": span.last,
        "state_hash": hex::encode(kernel.state_hash()),
        "oldest_reachable_seq": span.first,
        "snapshots": files.snapshots.iter().map(|(s, n, b)| json!({"seq": s, "file": n, "bytes": b})).collect::<Vec<_>>(),
        "segments": files.segments.iter().map(|(s, n, b)| json!({"first_seq": s, "file": n, "bytes": b})).collect::<Vec<_>>(),
        "snapshot_bytes": sum(&files.snapshots),
        "wal_bytes": sum(&files.segments),
        "tags": tags.iter().map(|t| json!({"name": t.name, "seq": t.seq})).collect::<Vec<_>>(),
    });
    if json {
        print_json(&v);
        return Ok(());
    }
    say!("path:        {}", dir.display());
    say!("dimension:   {}", config.dim);
    say!("metric:      {}", config.metric);
    say!(
        "records:     {}   nodes: {}   edges: {}",
        kernel.len(),
        kernel.node_count(),
        kernel.edge_count()
    );
    say!("sequence:    {}", span.last);
    say!("state hash:  {}", hex::encode(kernel.state_hash()));
    say!(
        "history:     states {}..={} reachable",
        span.first,
        span.last
    );
    say!(
        "snapshots:   {} ({} bytes)",
        files.snapshots.len(),
        sum(&files.snapshots)
    );
    for (s, n, b) in &files.snapshots {
        say!("  {n}  seq {s}  {b} bytes");
    }
    say!(
        "wal:         {} segments ({} bytes)",
        files.segments.len(),
        sum(&files.segments)
    );
    for (s, n, b) in &files.segments {
        say!("  {n}  from seq {s}  {b} bytes");
    }
    for t in &tags {
        say!("tag:         {} -> {}", t.name, t.seq);
    }
    Ok(())
}

fn verify(dir: &Path, json: bool) -> Outcome {
    let h = History::open(dir)?;
    let start = std::time::Instant::now();
    let mut bar: Option<ProgressBar> = None;
    let result = h.verify(&mut |done, total| {
        let b = bar.get_or_insert_with(|| progress_bar(total, "verifying"));
        b.set_position(done);
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let secs = start.elapsed().as_secs_f64();
    let v = match result {
        Ok(v) => v,
        Err(e) => {
            let f = Failure::from(e);
            if json && f.code == EXIT_DAMAGED {
                print_json(&json!({"ok": false, "error": f.message}));
            }
            return Err(f);
        }
    };
    let rate = v.wal_bytes as f64 / secs.max(1e-9) / 1e6;
    if json {
        print_json(&json!({
            "ok": true,
            "snapshots": v.snapshots,
            "segments": v.segments,
            "records": v.records,
            "wal_bytes": v.wal_bytes,
            "snapshot_bytes": v.snapshot_bytes,
            "seq": v.seq,
            "state_hash": hex::encode(v.state_hash),
            "torn_tail": v.torn_tail.as_ref().map(|(f, at, n)| json!({"file": f.display().to_string(), "offset": at, "bytes": n})),
            "seconds": secs,
        }));
    } else {
        let speed = if v.wal_bytes >= 1 << 20 {
            format!(", {rate:.0} MB/s")
        } else {
            String::new()
        };
        say!(
            "ok: {} snapshots, {} segments, {} records checked and replayed ({} WAL bytes{speed})",
            v.snapshots,
            v.segments,
            v.records,
            v.wal_bytes
        );
        say!(
            "sequence {} state hash {}",
            v.seq,
            hex::encode(v.state_hash)
        );
        if let Some((f, at, n)) = &v.torn_tail {
            say!(
                "note: {n} bytes of an interrupted append at the end of {} (offset {at}); never acknowledged, the next open cuts them off",
                f.display()
            );
        }
    }
    Ok(())
}

fn log(dir: &Path, from: Option<u64>, limit: usize, json: bool) -> Outcome {
    let h = History::open(dir)?;
    let span = h.span()?;
    let from = from.unwrap_or(span.first + 1).max(1);
    let entries = h.entries(from, limit)?;
    // Replaying from the state before `from` gives the ids automatic-id commands created.
    let mut kernel = if from > span.first {
        h.state_at(from - 1).ok().map(|(k, _)| k)
    } else {
        None
    };
    let tags = h.tags()?;
    let mut rows = Vec::new();
    for e in &entries {
        let cmd = valori_engine::decode_entry(e)?;
        let applied = kernel.as_mut().and_then(|k| k.apply(&cmd).ok());
        let mut row = describe::summary(&cmd, applied.as_ref());
        if let Value::Object(m) = &mut row {
            m.insert("seq".into(), json!(e.seq));
            m.insert("bytes".into(), json!(e.command.len()));
            m.insert("chain".into(), json!(hex::encode(e.chain)));
            let names: Vec<&str> = tags
                .iter()
                .filter(|t| t.seq == e.seq)
                .map(|t| t.name.as_str())
                .collect();
            if !names.is_empty() {
                m.insert("tags".into(), json!(names));
            }
        }
        rows.push(row);
    }
    if json {
        print_json(&json!({
            "commands": rows,
            "tags": tags.iter().map(|t| json!({"name": t.name, "seq": t.seq})).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    for r in &rows {
        let tags = r
            .get("tags")
            .and_then(Value::as_array)
            .map(|t| {
                let names: Vec<String> = t
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect();
                format!("  (tag: {})", names.join(", "))
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:>8}  {:<12} {:<28} {:>8} B  {}{tags}",
            field(r, "seq"),
            field(r, "kind"),
            field(r, "ids"),
            field(r, "bytes"),
            field(r, "chain").get(..16).unwrap_or_default(),
        );
    }
    if rows.is_empty() {
        let _ = writeln!(
            out,
            "no commands from sequence number {from} (log ends at {})",
            span.last
        );
    }
    Ok(())
}

fn show(dir: &Path, seq: u64, json: bool) -> Outcome {
    let h = History::open(dir)?;
    let entry = h
        .entries(seq, 1)?
        .into_iter()
        .find(|e| e.seq == seq)
        .ok_or_else(|| {
            let span = h.span().ok();
            Failure {
                code: EXIT_NOT_FOUND,
                message: match span {
                    Some(s) => format!(
                        "sequence number {seq} is not in the retained log (it holds {}..={})",
                        s.first + 1,
                        s.last
                    ),
                    None => format!("sequence number {seq} is not in the retained log"),
                },
            }
        })?;
    let cmd = valori_engine::decode_entry(&entry)?;
    let mut v = describe::full(&cmd, h.config()?.dim);
    if let Value::Object(m) = &mut v {
        m.insert("seq".into(), json!(entry.seq));
        m.insert("bytes".into(), json!(entry.command.len()));
        m.insert("chain".into(), json!(hex::encode(entry.chain)));
        m.insert("file".into(), json!(entry.file.display().to_string()));
        m.insert("offset".into(), json!(entry.offset));
    }
    if json {
        print_json(&v);
    } else {
        print_fields(&v);
    }
    Ok(())
}

fn hash(dir: &Path, at: Option<&str>, json: bool) -> Outcome {
    let (kernel, seq) = state(dir, at)?;
    let hash = hex::encode(kernel.state_hash());
    if json {
        print_json(&json!({"seq": seq, "state_hash": hash}));
    } else {
        say!("{hash}  (sequence number {seq})");
    }
    Ok(())
}

/// `DIR`, `DIR@SEQ` or `DIR@TAG` → the state.
fn side(spec: &str) -> Result<(Kernel<'static>, String), Failure> {
    let (dir, at) = match spec.rsplit_once('@') {
        Some((d, a)) if !Path::new(spec).exists() && !d.is_empty() => (d, Some(a)),
        _ => (spec, None),
    };
    let (kernel, seq) = state(Path::new(dir), at)?;
    Ok((kernel, format!("{dir}@{seq}")))
}

fn diff(a: &str, b: &str, json: bool) -> Outcome {
    let (ka, na) = side(a)?;
    let (kb, nb) = side(b)?;
    let d = describe::diff(&ka, &kb);
    if json {
        let mut v = d;
        if let Value::Object(m) = &mut v {
            m.insert("a".into(), json!(na));
            m.insert("b".into(), json!(nb));
        }
        print_json(&v);
        return Ok(());
    }
    say!("{na} -> {nb}");
    for section in ["records", "nodes", "edges"] {
        for change in ["added", "removed", "changed"] {
            let ids = d
                .pointer(&format!("/{section}/{change}"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if ids.is_empty() {
                continue;
            }
            let shown: Vec<String> = ids.iter().take(20).map(Value::to_string).collect();
            let more = if ids.len() > 20 {
                format!(" … (+{} more; --json lists all)", ids.len() - 20)
            } else {
                String::new()
            };
            say!(
                "{section} {change} ({}): {}{more}",
                ids.len(),
                shown.join(" ")
            );
        }
    }
    if d.get("identical") == Some(&json!(true)) {
        say!("identical (state hash {})", hex::encode(ka.state_hash()));
    }
    Ok(())
}

fn export(dir: &Path, file: &Path) -> Outcome {
    let h = History::open(dir)?;
    let ex = h.export()?;
    let bytes = ex.encode();
    let bar = progress_bar(bytes.len() as u64, "writing");
    let tmp = file.with_extension("tmp-export");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        for chunk in bytes.chunks(1 << 20) {
            f.write_all(chunk)?;
            bar.inc(chunk.len() as u64);
        }
        f.sync_all()?;
        std::fs::rename(&tmp, file)
    };
    let r = write();
    bar.finish_and_clear();
    r.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_failure("writing", file, &e)
    })?;
    say!(
        "{}: {} bytes, base sequence number {}, {} commands, state hash {}",
        file.display(),
        bytes.len(),
        ex.base_seq,
        ex.commands.len(),
        hex::encode(ex.state_hash)
    );
    Ok(())
}

fn read_export(file: &Path) -> Result<Export, Failure> {
    let bytes = std::fs::read(file).map_err(|e| io_failure("reading", file, &e))?;
    Export::decode(&bytes).map_err(|e| Failure {
        code: EXIT_DAMAGED,
        message: format!("{}: {}", file.display(), e.detail()),
    })
}

fn import(file: &Path, dir: &Path) -> Outcome {
    let ex = read_export(file)?;
    let bar = ProgressBar::new(ex.commands.len() as u64);
    if let Ok(style) = ProgressStyle::with_template("importing [{bar:30}] {pos}/{len} commands") {
        bar.set_style(style.progress_chars("=> "));
    }
    let options = Options::default().durability(Durability::None);
    let r = Engine::import(dir, &ex, options, &mut |done, _| bar.set_position(done));
    bar.finish_and_clear();
    let db = r.map_err(|e| match e {
        Error::Corrupt { reason, .. } => Failure {
            code: EXIT_DAMAGED,
            message: format!("{}: {reason}; nothing was written", file.display()),
        },
        other => Failure::from(other),
    })?;
    let hash = db.state_hash()?;
    let seq = db.sequence()?;
    db.close()?;
    say!(
        "{}: {} commands imported, sequence number {seq}, state hash {}",
        dir.display(),
        ex.commands.len(),
        hex::encode(hash)
    );
    Ok(())
}

fn parse_hash(s: &str) -> Result<[u8; 32], Failure> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s.trim(), &mut out)
        .map_err(|_| usage(format!("--expect-hash takes 64 hex digits, not {s:?}")))?;
    Ok(out)
}

fn replay(file: &Path, expect: Option<&str>, json: bool) -> Outcome {
    let expect = expect.map(parse_hash).transpose()?;
    let ex = read_export(file)?;
    let kernel = ex.replay().map_err(|e| Failure {
        code: EXIT_DAMAGED,
        message: format!("{}: {}", file.display(), e.detail()),
    })?;
    let hash = kernel.state_hash();
    let seq = ex.base_seq + ex.commands.len() as u64;
    let matches = expect.map(|h| h == hash);
    if json {
        print_json(&json!({
            "seq": seq,
            "state_hash": hex::encode(hash),
            "commands": ex.commands.len(),
            "matches": matches,
        }));
    } else {
        say!(
            "replayed {} commands from base sequence number {}: sequence number {seq}, state hash {}",
            ex.commands.len(),
            ex.base_seq,
            hex::encode(hash)
        );
    }
    match (matches, expect) {
        (Some(false), Some(want)) => Err(Failure {
            code: EXIT_DAMAGED,
            message: format!(
                "state hash mismatch: the replay reached {}, expected {}",
                hex::encode(hash),
                hex::encode(want)
            ),
        }),
        _ => Ok(()),
    }
}

fn salvage(dir: &Path, out: &Path) -> Outcome {
    let db = Engine::open(dir, Options::salvage())?;
    let hash = db.save_as(out)?;
    let seq = db.sequence()?;
    match db.salvage_report() {
        Some(r) => say!(
            "{}: damage at byte {} of {} ({}); the intact prefix through sequence number {} copied to {}, state hash {}",
            dir.display(),
            r.offset,
            r.file.display(),
            r.reason,
            r.recovered_seq,
            out.display(),
            hex::encode(hash)
        ),
        None => say!(
            "{}: no damage found; copied through sequence number {seq} to {}, state hash {}",
            dir.display(),
            out.display(),
            hex::encode(hash)
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
