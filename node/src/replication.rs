//! `--replicate` and `--follow`: the server's databases as leaders that publish their logs to
//! NATS JetStream, or as read-only followers of every database on the stream
//! (`valori-fleet`, docs/REPLICATION.md).

use crate::error::ApiError;
use crate::registry::Registry;
use crate::App;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use utoipa::ToSchema;
use valori_engine::valori_kernel::ErrorCode;
use valori_engine::Engine;
use valori_fleet::{Fleet, Follower, Leader};

/// How often a follower looks for new databases on the stream.
const DISCOVERY: Duration = Duration::from_millis(500);

/// This server's part in replication.
pub struct Replication {
    fleet: Fleet,
    /// Writes wait for the stream's acknowledgment (`--durability stream`).
    wait: bool,
    leaders: Mutex<BTreeMap<String, Arc<Leader>>>,
    followers: Mutex<BTreeMap<String, Follower>>,
    follower: bool,
}

/// A database's replication, as `GET /v1/databases/{db}/replication` answers.
#[derive(Serialize, ToSchema)]
pub struct ReplicationStatus {
    /// `leader` (publishes to the stream), `follower` (applies the stream) or `none`.
    pub role: String,
    /// The NATS server(s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The database's last sequence number.
    pub sequence: u64,
    /// Its state hash at that sequence number (hex).
    pub state_hash: String,
    /// Leader: the last record the stream acknowledged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<u64>,
    /// Follower: records on the stream not yet applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<u64>,
    /// Why replication stopped, if it did (a follower that refused a record says which).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Replication {
    /// Connects and makes every database of `app` a leader; databases created later lead
    /// from their creation.
    pub async fn lead(
        url: &str,
        replicas: usize,
        wait: bool,
        app: &Arc<App>,
    ) -> Result<(), String> {
        let fleet = Fleet::connect(url, replicas)
            .await
            .map_err(|e| format!("--replicate {url}: {e}"))?;
        let rep = Arc::new(Replication {
            fleet,
            wait,
            leaders: Mutex::default(),
            followers: Mutex::default(),
            follower: false,
        });
        for (name, db) in app.registry.all() {
            rep.start_leader(&name, db).await?;
        }
        let handle = tokio::runtime::Handle::current();
        let weak = Arc::downgrade(&rep);
        app.registry
            .on_create(Box::new(move |name: &str, db: Arc<Engine>| {
                let (weak, name) = (weak.clone(), name.to_string());
                handle.spawn(async move {
                    if let Some(rep) = weak.upgrade() {
                        if let Err(e) = rep.start_leader(&name, db).await {
                            tracing::error!(database = %name, "replication: {e}");
                        }
                    }
                });
            }));
        app.set_replication(rep);
        Ok(())
    }

    async fn start_leader(&self, name: &str, db: Arc<Engine>) -> Result<(), String> {
        let leader = self
            .fleet
            .lead(name, db)
            .await
            .map_err(|e| format!("replicating database '{name}': {e}"))?;
        tracing::info!(database = %name, url = %self.fleet.url(), "leading: publishing the log");
        lock(&self.leaders).insert(name.to_string(), Arc::new(leader));
        Ok(())
    }

    /// Connects and follows every database on the stream (now and as they appear), in
    /// directories under `data`; `app` serves them.
    pub async fn follow(
        url: &str,
        replicas: usize,
        data: PathBuf,
        app: &Arc<App>,
    ) -> Result<(), String> {
        let fleet = Fleet::connect(url, replicas)
            .await
            .map_err(|e| format!("--follow {url}: {e}"))?;
        let rep = Arc::new(Replication {
            fleet,
            wait: false,
            leaders: Mutex::default(),
            followers: Mutex::default(),
            follower: true,
        });
        rep.discover(&data, &app.registry).await?;
        app.set_replication(rep);
        let weak = Arc::downgrade(app);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(DISCOVERY).await;
                let Some(app) = weak.upgrade() else { return };
                let Some(rep) = app.replication() else { return };
                if let Err(e) = rep.discover(&data, &app.registry).await {
                    tracing::warn!("following: {e}");
                }
            }
        });
        Ok(())
    }

    /// Starts following the stream's databases this server does not follow yet.
    async fn discover(&self, data: &std::path::Path, registry: &Registry) -> Result<(), String> {
        let names = self.fleet.databases().await.map_err(|e| e.to_string())?;
        for name in names {
            if lock(&self.followers).contains_key(&name)
                || crate::registry::check_name(&name).is_err()
            {
                continue;
            }
            let follower = match registry.get(&name) {
                Ok(db) => self.fleet.follow_engine(&name, db).await,
                Err(_) => self.fleet.follow(&name, &data.join(&name)).await,
            };
            // One database that cannot be followed now does not keep the others from it.
            let follower = match follower {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(database = %name, "following: {e}; trying again later");
                    continue;
                }
            };
            registry.insert_open(&name, Arc::clone(follower.engine()));
            tracing::info!(database = %name, url = %self.fleet.url(), "following");
            lock(&self.followers).insert(name, follower);
        }
        Ok(())
    }

    /// Whether this server follows (writes are refused).
    pub fn is_follower(&self) -> bool {
        self.follower
    }

    /// Before a write to `name`: refused if its leader was fenced off (another leader took
    /// over; this copy's writes would never reach the fleet).
    pub fn before_write(&self, name: &str) -> Result<(), ApiError> {
        if let Some(e) = self.leader(name).and_then(|l| l.status().error) {
            return Err(ApiError::new(
                ErrorCode::Misuse,
                format!("database '{name}' no longer leads ({e}); nothing was written"),
            ));
        }
        Ok(())
    }

    fn leader(&self, name: &str) -> Option<Arc<Leader>> {
        lock(&self.leaders).get(name).cloned()
    }

    /// After a write to `name` succeeded locally: with `--durability stream`, waits (up to
    /// `timeout`) until the stream acknowledged everything the database has logged.
    pub async fn after_write(
        &self,
        name: &str,
        db: &Engine,
        timeout: Duration,
    ) -> Result<(), ApiError> {
        if !self.wait {
            return Ok(());
        }
        let seq = db.sequence()?;
        let deadline = tokio::time::Instant::now() + timeout;
        let not_acknowledged = |why: String| {
            ApiError::new(
                ErrorCode::Busy,
                format!("the write is durable here but the stream has not acknowledged it: {why}"),
            )
        };
        // A database created by this request starts leading a moment later.
        let leader = loop {
            if let Some(l) = self.leader(name) {
                break l;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(not_acknowledged(
                    "the database is not publishing yet".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        match tokio::time::timeout_at(deadline, leader.wait_published(seq)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(not_acknowledged(e.to_string())),
            Err(_) => Err(not_acknowledged(leader.status().retrying.unwrap_or_else(
                || "no acknowledgment within --request-timeout".into(),
            ))),
        }
    }

    /// Stops replicating `name` (it is being dropped), letting go of its database.
    pub async fn stop(&self, name: &str) {
        let leader = lock(&self.leaders).remove(name);
        if let Some(l) = leader.and_then(|l| Arc::try_unwrap(l).ok()) {
            l.stop().await;
        }
        let follower = lock(&self.followers).remove(name);
        if let Some(f) = follower {
            drop(f.stop().await);
        }
    }

    /// `name`'s replication status.
    pub fn status(&self, name: &str, db: &Engine) -> Result<ReplicationStatus, ApiError> {
        let (hash, sequence) = db.state_hash_at()?;
        let mut st = ReplicationStatus {
            role: "none".into(),
            url: Some(self.fleet.url().to_string()),
            sequence,
            state_hash: hex::encode(hash),
            published: None,
            pending: None,
            error: None,
        };
        if let Some(l) = self.leader(name) {
            let s = l.status();
            st.role = "leader".into();
            st.published = Some(s.published);
            st.error = s.error.or(s.retrying);
        } else if let Some(f) = lock(&self.followers).get(name) {
            let s = f.status();
            st.role = "follower".into();
            st.pending = Some(s.pending);
            st.error = s.error.or(s.retrying);
        }
        Ok(st)
    }
}
