//! Command-line flags and environment variables.

use crate::auth::{KeyKind, Keys};
use crate::registry::OpenSettings;
use clap::{Parser, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use valori_engine::Durability;

/// When writes are acknowledged.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DurabilityArg {
    /// Every write is fsynced before it is answered.
    Fsync,
    /// The same, with concurrent writers sharing fsyncs.
    Group,
    /// Written to the OS, not fsynced (bulk loads; a power loss may lose recent writes).
    None,
    /// Fsynced here and acknowledged by the replication stream (with --replicate: on a
    /// cluster, stored by a quorum of its servers) before it is answered.
    Stream,
}

/// Log line format.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// valori-node: Valori's databases over HTTP.
#[derive(Debug, Parser)]
#[command(name = "valori-node", version, about)]
pub struct Args {
    /// Directory holding one subdirectory per database.
    #[arg(long, env = "VALORI_DATA", default_value = "./data/node")]
    pub data: PathBuf,
    /// Address to listen on. A non-loopback address needs an API key.
    #[arg(long, env = "VALORI_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    /// When a write is acknowledged: a 2xx means the same as in-process.
    #[arg(long, env = "VALORI_DURABILITY", value_enum, default_value = "fsync")]
    pub durability: DurabilityArg,
    /// File of API keys, one per line: `read-write KEY`, `read-only KEY` or `KEY`
    /// (read-write). VALORI_API_KEY adds one read-write key, VALORI_READ_ONLY_API_KEY one
    /// read-only key.
    #[arg(long, env = "VALORI_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,
    /// PEM certificate chain: serve HTTPS (with --tls-key).
    #[arg(long, env = "VALORI_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "VALORI_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Largest request body, in bytes.
    #[arg(long, default_value_t = 256 << 20)]
    pub max_body_bytes: usize,
    /// Most rows in one batch insert or batch search.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_batch: usize,
    /// Largest `k` of a search.
    #[arg(long, default_value_t = 10_000)]
    pub max_k: usize,
    /// Requests handled at once; more are answered 429.
    #[arg(long, default_value_t = 512)]
    pub max_concurrency: usize,
    /// Seconds a search may take before it is answered 503.
    #[arg(long, default_value_t = 60)]
    pub request_timeout: u64,
    /// Checkpoint a database when its WAL passes this many bytes (0: never automatically).
    #[arg(long, default_value_t = 256 << 20)]
    pub checkpoint_wal_bytes: u64,
    /// Snapshots each database keeps at a checkpoint, with the log after the oldest, so past
    /// states stay reachable (`valori hash --at`, `valori checkout`); 1 keeps only the newest.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub retain_snapshots: u32,
    /// Also keep every snapshot written within this many seconds, with the log after it.
    #[arg(long, value_name = "SECS")]
    pub retain_for: Option<u64>,
    /// Make every database a leader that publishes its log to this NATS JetStream server
    /// (or comma-separated servers of a cluster): `nats://HOST:PORT`. See docs/REPLICATION.md.
    #[arg(
        long,
        env = "VALORI_REPLICATE",
        value_name = "URL",
        conflicts_with = "follow"
    )]
    pub replicate: Option<String>,
    /// Serve read-only followers of every database on this NATS JetStream server's stream
    /// (writes are answered 409): `nats://HOST:PORT`.
    #[arg(long, env = "VALORI_FOLLOW", value_name = "URL")]
    pub follow: Option<String>,
    /// Copies the stream and snapshot bucket keep when this server creates them (1, or 3 on
    /// a cluster of at least 3 servers).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=5))]
    pub stream_replicas: u64,
    /// Log line format.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Print the OpenAPI schema of the REST API and exit.
    #[arg(long)]
    pub openapi: bool,
}

/// The request limits.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Most rows in one batch.
    pub max_batch: usize,
    /// Largest `k`.
    pub max_k: usize,
    /// Requests handled at once.
    pub max_concurrency: usize,
    /// Longest a request may take.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 256 << 20,
            max_batch: 1 << 20,
            max_k: 10_000,
            max_concurrency: 512,
            request_timeout: Duration::from_secs(60),
        }
    }
}

impl Args {
    /// The limits the flags give (refused if a batch answer could not say its size).
    pub fn limits(&self) -> Result<Limits, String> {
        if u32::try_from(self.max_batch).is_err() {
            return Err(format!(
                "--max-batch {} is over {}: the binary batch answers count rows in 32 bits",
                self.max_batch,
                u32::MAX
            ));
        }
        Ok(Limits {
            max_body_bytes: self.max_body_bytes,
            max_batch: self.max_batch,
            max_k: self.max_k,
            max_concurrency: self.max_concurrency.max(1),
            request_timeout: Duration::from_secs(self.request_timeout.max(1)),
        })
    }

    /// How databases are opened.
    pub fn open_settings(&self) -> OpenSettings {
        OpenSettings {
            durability: match self.durability {
                DurabilityArg::Fsync => Durability::Fsync,
                DurabilityArg::Group => Durability::GroupCommit,
                DurabilityArg::None => Durability::None,
                DurabilityArg::Stream => Durability::Fsync,
            },
            checkpoint_wal_bytes: self.checkpoint_wal_bytes,
            retain_snapshots: self.retain_snapshots,
            retain_for: self.retain_for.map(std::time::Duration::from_secs),
            follower: self.follow.is_some(),
        }
    }

    /// The API keys from the key file and the environment.
    pub fn keys(&self) -> Result<Keys, String> {
        let mut keys = Keys::none();
        if let Some(f) = &self.api_key_file {
            keys.add_file(f)?;
            if keys.is_empty() {
                return Err(format!(
                    "the API key file {} holds no key (without keys every request is allowed)",
                    f.display()
                ));
            }
        }
        for (var, kind) in [
            ("VALORI_API_KEY", KeyKind::ReadWrite),
            ("VALORI_READ_ONLY_API_KEY", KeyKind::ReadOnly),
        ] {
            if let Ok(k) = std::env::var(var) {
                keys.add(k.trim(), kind)
                    .map_err(|e| format!("{var}: {e}"))?;
            }
        }
        Ok(keys)
    }
}
