//! The named databases a server holds: each a directory under the data directory.

use crate::error::ApiError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use valori_engine::valori_kernel::{Config, ErrorCode, IndexParams, Metric};
use valori_engine::{Durability, Engine, Options};

/// The database that clients use when they name none.
pub const DEFAULT_DATABASE: &str = "default";

/// Directories of dropped databases are renamed to this prefix and the name before deletion
/// (a name never starts with '.', so no database can be called that).
const TOMBSTONE_PREFIX: &str = ".dropped-";

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// The longest database name.
pub const MAX_NAME_LEN: usize = 64;

/// Checks a database name: 1 to 64 of `a-z`, `0-9`, `_`, `-`, starting with a letter or digit
/// (so it is a plain directory name on every system).
pub fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "invalid database name '{}': use 1 to {MAX_NAME_LEN} characters of a-z, 0-9, '_' and '-', starting with a letter or digit",
            name.escape_default()
        )))
    }
}

/// How the server opens its databases.
#[derive(Clone, Debug)]
pub struct OpenSettings {
    /// Durability of every database.
    pub durability: Durability,
    /// Automatic checkpoint threshold.
    pub checkpoint_wal_bytes: u64,
    /// Snapshots kept at a checkpoint.
    pub retain_snapshots: u32,
    /// And every snapshot younger than this.
    pub retain_for: Option<std::time::Duration>,
    /// Databases are followers (`--follow`): they take only their leader's records, and none
    /// is created here.
    pub follower: bool,
}

/// Called with each database the registry creates (replication starts leading it).
pub type OnCreate = Box<dyn Fn(&str, Arc<Engine>) + Send + Sync>;

/// The open databases.
pub struct Registry {
    dir: PathBuf,
    settings: OpenSettings,
    open: RwLock<BTreeMap<String, Arc<Engine>>>,
    /// Serialises creating and dropping (opening files), never held during a request.
    changes: Mutex<()>,
    on_create: std::sync::OnceLock<OnCreate>,
}

impl Registry {
    /// Opens every database under `dir` (creating `dir` if missing). A subdirectory whose name
    /// is not a database name, or which holds no database, is left alone; one that fails to
    /// open stops the server (its error names it).
    pub fn open(dir: &Path, settings: OpenSettings) -> Result<Registry, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("creating the data directory {}: {e}", dir.display()))?;
        let mut open = BTreeMap::new();
        let entries = std::fs::read_dir(dir)
            .map_err(|e| format!("reading the data directory {}: {e}", dir.display()))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| format!("reading {}: {e}", dir.display()))?;
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if let (true, Some(name)) = (is_dir, entry.file_name().to_str()) {
                if name.starts_with(TOMBSTONE_PREFIX) {
                    // A drop that a crash interrupted: finish it.
                    std::fs::remove_dir_all(entry.path())
                        .map_err(|e| format!("removing {}: {e}", entry.path().display()))?;
                    tracing::info!(directory = %name, "removed a dropped database's files");
                } else if check_name(name).is_ok() {
                    names.push(name.to_string());
                }
            }
        }
        names.sort();
        for name in names {
            let path = dir.join(&name);
            match Engine::open(&path, options(&settings, None, None, false)) {
                Ok(db) => {
                    tracing::info!(database = %name, records = db.len().unwrap_or(0), "opened");
                    open.insert(name, Arc::new(db));
                }
                Err(e) if e.code() == ErrorCode::NotFound => {
                    tracing::warn!(path = %path.display(), "not a database; left alone");
                }
                Err(e) => return Err(format!("opening database '{name}': {e}")),
            }
        }
        Ok(Registry {
            dir: dir.to_path_buf(),
            settings,
            open: RwLock::new(open),
            changes: Mutex::new(()),
            on_create: std::sync::OnceLock::new(),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Engine>>> {
        self.open.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Engine>>> {
        self.open.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The open database `name`.
    pub fn get(&self, name: &str) -> Result<Arc<Engine>, ApiError> {
        check_name(name)?;
        self.read().get(name).cloned().ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotFound,
                format!(
                    "no database named '{name}': create it with PUT /v1/databases/{name} {{\"dim\": ..., \"metric\": \"l2\"}}"
                ),
            )
        })
    }

    /// The database `name`; the default database is created on first use with `dim` (L2),
    /// so that a first insert into an empty server works.
    pub fn get_for_insert(&self, name: &str, dim: usize) -> Result<Arc<Engine>, ApiError> {
        match self.get(name) {
            Err(e) if name == DEFAULT_DATABASE && e.status == axum::http::StatusCode::NOT_FOUND => {
                let dim = u32::try_from(dim)
                    .map_err(|_| ApiError::invalid("the vector has too many components"))?;
                match self.ensure(name, dim, None, None) {
                    Ok((_, db)) => Ok(db),
                    // Another first insert created it meanwhile, maybe of another dimension:
                    // the insert itself then reports the dimension, as in process.
                    Err(e) => self.get(name).map_err(|_| e),
                }
            }
            other => other,
        }
    }

    /// Opens or creates database `name` with this dimension and metric (`None`: the existing
    /// one's, or L2 for a new one). Returns whether it was created. An existing database of
    /// another dimension or metric is `InvalidInput`.
    pub fn ensure(
        &self,
        name: &str,
        dim: u32,
        metric: Option<Metric>,
        index: Option<IndexParams>,
    ) -> Result<(bool, Arc<Engine>), ApiError> {
        check_name(name)?;
        let _turn = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(db) = self.read().get(name).cloned() {
            let c = db.config()?;
            if c.dim != dim || metric.is_some_and(|m| m != c.metric) {
                return Err(ApiError::invalid(format!(
                    "database '{name}' exists with dim {} and metric '{}'; asked for dim {dim}{}",
                    c.dim,
                    c.metric.name(),
                    metric.map_or(String::new(), |m| format!(" and metric '{}'", m.name()))
                )));
            }
            let has = db.index_params()?;
            if index.is_some() && has != index {
                return Err(ApiError::invalid(format!(
                    "database '{name}' exists {}; asked for an index with m = {} and ef_construction = {}",
                    has.map_or("without an index".to_string(), |p| format!(
                        "with an index of m = {} and ef_construction = {}",
                        p.m, p.ef_construction
                    )),
                    index.map_or(0, |p| p.m),
                    index.map_or(0, |p| p.ef_construction),
                )));
            }
            return Ok((false, db));
        }
        if self.settings.follower {
            return Err(follower_refuses(name));
        }
        // Checked before any file is made (the engine would lock the directory first).
        Config::new(dim, metric.unwrap_or(Metric::L2))?;
        let path = self.dir.join(name);
        let db = Arc::new(Engine::open(
            &path,
            Options {
                index,
                ..options(
                    &self.settings,
                    Some(dim),
                    Some(metric.unwrap_or(Metric::L2)),
                    true,
                )
            },
        )?);
        self.write().insert(name.to_string(), db.clone());
        tracing::info!(database = %name, dim, "created");
        if let Some(f) = self.on_create.get() {
            f(name, db.clone());
        }
        Ok((true, db))
    }

    /// Writes the state of database `name` after command `seq` as a new database `into`,
    /// opens it and serves it. Returns it and its state hash. `into` must not exist
    /// (`INVALID_INPUT`).
    pub fn checkout(
        &self,
        name: &str,
        seq: u64,
        into: &str,
    ) -> Result<(Arc<Engine>, [u8; 32]), ApiError> {
        check_name(into)?;
        let db = self.get(name)?;
        if self.settings.follower {
            return Err(follower_refuses(into));
        }
        let _turn = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        let path = self.dir.join(into);
        if self.read().contains_key(into) || path.exists() {
            return Err(ApiError::invalid(format!(
                "the name '{into}' already holds a database: check out into a new name"
            )));
        }
        let hash = db.checkout(seq, &path)?;
        let new = Arc::new(Engine::open(
            &path,
            options(&self.settings, None, None, false),
        )?);
        self.write().insert(into.to_string(), new.clone());
        tracing::info!(database = %into, from = %name, seq, "checked out");
        if let Some(f) = self.on_create.get() {
            f(into, new.clone());
        }
        Ok((new, hash))
    }

    /// Closes database `name` and deletes its directory. Waits (up to `wait`) for requests
    /// using it to finish; new requests no longer find it.
    pub fn drop_database(&self, name: &str, wait: Duration) -> Result<(), ApiError> {
        check_name(name)?;
        let _turn = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        let mut db = self.write().remove(name).ok_or_else(|| {
            ApiError::new(ErrorCode::NotFound, format!("no database named '{name}'"))
        })?;
        let deadline = Instant::now() + wait;
        let engine = loop {
            match Arc::try_unwrap(db) {
                Ok(engine) => break engine,
                Err(back) if Instant::now() < deadline => {
                    db = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(back) => {
                    // Still in use: put it back, nothing changed.
                    self.write().insert(name.to_string(), back);
                    return Err(ApiError::new(
                        ErrorCode::Busy,
                        format!("database '{name}' is still in use by running requests; try again"),
                    ));
                }
            }
        };
        let path = engine.path().to_path_buf();
        engine.close()?;
        // Atomically out of the namespace first (a crash from here on leaves a tombstone that
        // the next start removes, never a half-deleted database), then deleted.
        let tomb = self.dir.join(format!("{TOMBSTONE_PREFIX}{name}"));
        let io = |what: &str, e: std::io::Error| {
            ApiError::new(ErrorCode::Io, format!("{what} {}: {e}", path.display()))
        };
        if tomb.exists() {
            std::fs::remove_dir_all(&tomb).map_err(|e| io("removing an old tombstone of", e))?;
        }
        std::fs::rename(&path, &tomb).map_err(|e| io("renaming", e))?;
        sync_dir(&self.dir).map_err(|e| io("syncing the data directory after dropping", e))?;
        std::fs::remove_dir_all(&tomb).map_err(|e| io("removing", e))?;
        tracing::info!(database = %name, "dropped");
        Ok(())
    }

    /// Registers `f` to be called with every database created from now on (once; a second
    /// registration is ignored).
    pub fn on_create(&self, f: OnCreate) {
        let _ = self.on_create.set(f);
    }

    /// Serves `db`, opened elsewhere (a follower's database), as `name`, unless a database of
    /// that name is served already.
    pub fn insert_open(&self, name: &str, db: Arc<Engine>) {
        self.write().entry(name.to_string()).or_insert(db);
    }

    /// Every open database, by name.
    pub fn all(&self) -> Vec<(String, Arc<Engine>)> {
        self.read()
            .iter()
            .map(|(n, d)| (n.clone(), d.clone()))
            .collect()
    }

    /// Flushes and closes every database (at shutdown, after the last request). Returns the
    /// errors, by database.
    pub fn close_all(&self, wait: Duration) -> Vec<String> {
        let _turn = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        let all = std::mem::take(&mut *self.write());
        let deadline = Instant::now() + wait;
        let mut errors = Vec::new();
        for (name, mut db) in all {
            let engine = loop {
                match Arc::try_unwrap(db) {
                    Ok(e) => break Some(e),
                    Err(back) if Instant::now() < deadline => {
                        db = back;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(back) => {
                        // Still referenced: flush what it has; the lock goes with the process.
                        if let Err(e) = back.flush() {
                            errors.push(format!("{name}: {e}"));
                        }
                        break None;
                    }
                }
            };
            if let Some(engine) = engine {
                match engine.close() {
                    Ok(()) => tracing::info!(database = %name, "closed"),
                    Err(e) => errors.push(format!("{name}: {e}")),
                }
            }
        }
        errors
    }
}

fn options(s: &OpenSettings, dim: Option<u32>, metric: Option<Metric>, create: bool) -> Options {
    Options {
        dim,
        metric,
        durability: s.durability,
        checkpoint_wal_bytes: s.checkpoint_wal_bytes,
        create,
        salvage: false,
        follower: s.follower,
        retain_snapshots: s.retain_snapshots,
        retain_for: s.retain_for,
        index: None,
    }
}

/// The answer to a request that would create a database on a follower.
pub fn follower_refuses(name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Misuse,
        format!(
            "this server follows a stream (--follow): its databases come from their leader, so '{name}' cannot be created or written here; send writes to the leader"
        ),
    )
}
