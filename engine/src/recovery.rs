//! Recovering a database's state from its directory: the newest snapshot plus the WAL after
//! it, or a new empty database. Returns a plain [`Recovered`] value; it knows nothing of the
//! engine handle that is built from it.
//!
//! Recovery is strict: a torn record at the very end of the log (an append interrupted by a
//! crash, never acknowledged) is cut off; any other damage is `Corrupt` with file and offset.
//! A salvage open instead stops at the first damage and changes no file.

use crate::directory::{self, Listing, Retention};
use crate::error::{Error, Result};
use crate::options::Options;
use crate::snapshot;
use crate::storage::{Storage, StorageFile};
use crate::wal::{self, genesis_chain, parse_segment, parse_segment_name, Chain, Segment, Tail};
use std::path::{Path, PathBuf};
use valori_kernel::{Command, Config, IndexParams, Kernel, Metric};

/// The state recovery found, and where the log continues.
pub(crate) struct Recovered {
    /// The state after the last intact record.
    pub(crate) kernel: Kernel<'static>,
    /// The last sequence number applied.
    pub(crate) seq: u64,
    /// The chain value after it.
    pub(crate) chain: Chain,
    /// Sequence number of the snapshot recovery started from.
    pub(crate) snapshot_seq: u64,
    /// The segment where appends continue (none for a salvage open).
    pub(crate) segment: Option<Box<dyn StorageFile>>,
    /// Bytes in that segment.
    pub(crate) segment_bytes: u64,
    /// What a salvage open found damaged.
    pub(crate) salvage: Option<SalvageReport>,
    /// What recovery found and did.
    pub(crate) report: RecoveryReport,
}

/// What open found and did: where recovery started, how much log it replayed, and any damaged
/// tail it cut off ([`crate::Engine::recovery_report`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Sequence number of the snapshot recovery started from.
    pub snapshot_seq: u64,
    /// WAL records replayed after it.
    pub replayed: u64,
    /// The last sequence number recovered.
    pub seq: u64,
    /// The damaged or incomplete end of the last WAL segment, removed at open: the bytes an
    /// interrupted append (never acknowledged) or a power cut left there.
    pub torn_tail: Option<TornTail>,
}

/// A damaged tail cut off at open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// The segment file.
    pub file: PathBuf,
    /// Where the cut was made (the end of the last intact record).
    pub offset: u64,
    /// Bytes removed.
    pub bytes: u64,
    /// What was wrong with them.
    pub reason: String,
}

/// What a salvage open found: the first damage, and how far the recovered state reaches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SalvageReport {
    /// The damaged file.
    pub file: PathBuf,
    /// Offset of the damage.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
    /// Last sequence number recovered intact.
    pub recovered_seq: u64,
}

/// The last segment found, as recovery left it.
struct TailSegment {
    path: PathBuf,
    /// Bytes in the file.
    file_len: u64,
    /// The segment's WAL version.
    version: u32,
    valid_len: u64,
    /// Why the bytes after `valid_len` are not records (a torn or damaged tail).
    damage: Option<String>,
    header_torn: bool,
    /// One past the last sequence number it holds.
    end_seq: u64,
    chain_out: Chain,
}

/// Progress of replay through the log.
pub(crate) struct Replay {
    pub(crate) kernel: Kernel<'static>,
    pub(crate) seq: u64,
    pub(crate) chain: Chain,
}

impl Replay {
    /// Applies one verified record (at `offset` in `path`), which must be the next one and
    /// continue the chain.
    pub(crate) fn apply_record(
        &mut self,
        seq: u64,
        offset: u64,
        prev: &Chain,
        after: &Chain,
        payload: &[u8],
        path: &Path,
    ) -> Result<()> {
        if seq != self.seq + 1 {
            return Err(Error::corrupt(
                path,
                offset + 8,
                format!(
                    "gap in sequence numbers: expected {}, found {seq}",
                    self.seq + 1
                ),
            ));
        }
        if *prev != self.chain {
            return Err(Error::corrupt(
                path,
                offset,
                "hash chain does not continue from the previous record or snapshot",
            ));
        }
        let at = offset + wal::RECORD_HEADER_LEN as u64;
        let cmd = Command::decode(payload).map_err(|e| {
            Error::corrupt(path, at, format!("logged command does not decode: {e}"))
        })?;
        self.kernel
            .apply(&cmd)
            .map_err(|e| Error::corrupt(path, at, format!("logged command does not apply: {e}")))?;
        self.seq = seq;
        self.chain = *after;
        Ok(())
    }

    /// Applies the records of `seg` after the current sequence number.
    fn apply(&mut self, seg: &Segment, bytes: &[u8], path: &Path) -> Result<()> {
        for rec in &seg.records {
            if rec.seq <= self.seq {
                continue;
            }
            let payload = bytes.get(rec.payload.clone()).unwrap_or_default();
            self.apply_record(rec.seq, rec.offset, &rec.prev, &rec.after, payload, path)?;
        }
        Ok(())
    }
}

/// Recovers the database in `dir` (whose lock the caller holds), or creates it as `options`
/// allow.
pub(crate) fn recover(storage: &dyn Storage, dir: &Path, options: &Options) -> Result<Recovered> {
    let listing = directory::list(storage, dir)?;
    if !options.salvage {
        directory::remove_temps(storage, dir, &listing)?;
    }
    let Some((snap_seq, snap_name)) = listing.snapshots.last().cloned() else {
        return create(storage, dir, options, &listing);
    };
    let snap_path = dir.join(&snap_name);
    let bytes = storage
        .read(&snap_path)
        .map_err(Error::io("reading", &snap_path))?;
    let snap = snapshot::decode(&bytes)
        .map_err(|(offset, reason)| Error::corrupt(&snap_path, offset, reason))?;
    if snap.seq != snap_seq {
        return Err(Error::corrupt(
            &snap_path,
            16,
            "sequence number differs from the file name",
        ));
    }
    check_config(snap.kernel.config(), options)?;
    check_index(snap.kernel.index_params(), options)?;
    let mut replay = Replay {
        kernel: snap.kernel,
        seq: snap.seq,
        chain: snap.chain,
    };
    let mut salvage_report = None;
    // The last segment: where appends continue if it ends exactly where replay ended.
    let mut tail: Option<TailSegment> = None;
    // Segments the snapshot covers whole (kept by retention for history) are not read.
    let segments = listing.segments_from(snap_seq.saturating_add(1));
    let count = segments.len();
    for (i, (first, name)) in segments.iter().enumerate() {
        let path = dir.join(name);
        let bytes = storage.read(&path).map_err(Error::io("reading", &path))?;
        let last = i + 1 == count;
        let outcome = match parse_segment(&bytes) {
            Ok(seg) => match seg.tail {
                Tail::Torn(at) if !last => Err((
                    seg,
                    at,
                    "incomplete record in the middle of the log".to_string(),
                )),
                _ if seg.valid_len > 0 && seg.first_seq != *first => Err((
                    seg,
                    8,
                    "first sequence number differs from the file name".to_string(),
                )),
                _ => Ok(seg),
            },
            Err((damage, partial)) => {
                let seg = partial.unwrap_or(Segment {
                    first_seq: *first,
                    records: Vec::new(),
                    chain_out: [0; 32],
                    valid_len: 0,
                    tail: Tail::Clean,
                });
                Err((seg, damage.offset, damage.reason.to_string()))
            }
        };
        // The tail rule (docs/FORMAT.md §10): damage in the last segment that no valid record
        // follows is where an interrupted append stopped, never acknowledged; it is cut off
        // below. Damage that a valid record follows is corruption.
        let outcome = match outcome {
            Err((seg, _, reason))
                if last
                    && !options.salvage
                    && wal::damage_is_tail(&bytes, seg.valid_len)
                    && (seg.valid_len == 0 || seg.first_seq == *first) =>
            {
                Ok((seg, Some(reason)))
            }
            Ok(seg) => {
                let torn = matches!(seg.tail, Tail::Torn(_))
                    .then(|| "incomplete record at the end of the log".to_string());
                Ok((seg, torn))
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok((seg, damage)) => {
                replay
                    .apply(&seg, &bytes, &path)
                    .or_else(|e| salvage_or(options, e, &mut salvage_report, replay.seq))?;
                if salvage_report.is_some() {
                    break;
                }
                tail = Some(TailSegment {
                    path,
                    file_len: bytes.len() as u64,
                    valid_len: seg.valid_len,
                    damage,
                    header_torn: seg.valid_len == 0,
                    version: bytes
                        .get(4..8)
                        .and_then(|b| b.try_into().ok())
                        .map_or(0, u32::from_le_bytes),
                    end_seq: seg.first_seq + seg.records.len() as u64,
                    chain_out: seg.chain_out,
                });
            }
            Err((seg, offset, reason)) => {
                let e = Error::corrupt(&path, offset, reason);
                if !options.salvage {
                    return Err(e);
                }
                // Salvage: keep the intact records before the damage.
                replay
                    .apply(&seg, &bytes, &path)
                    .or_else(|e2| salvage_or(options, e2, &mut salvage_report, replay.seq))?;
                if salvage_report.is_none() {
                    salvage_or(options, e, &mut salvage_report, replay.seq)?;
                }
                break;
            }
        }
    }

    let mut segment_bytes = wal::SEGMENT_HEADER_LEN as u64;
    let mut torn_tail = None;
    let file = if options.salvage {
        None
    } else {
        let f = match tail {
            Some(t)
                if !t.header_torn && t.end_seq == replay.seq + 1 && t.chain_out == replay.chain =>
            {
                let mut f = storage
                    .open_append(&t.path)
                    .map_err(Error::io("opening", &t.path))?;
                if t.file_len != t.valid_len {
                    f.truncate(t.valid_len)
                        .map_err(Error::io("truncating the damaged tail of", &t.path))?;
                    torn_tail = Some(TornTail {
                        offset: t.valid_len,
                        bytes: t.file_len - t.valid_len,
                        reason: t.damage.unwrap_or_default(),
                        file: t.path.clone(),
                    });
                }
                // What was replayed may never have been synced (a crash in `None` mode, or an
                // append whose fsync never ran): make it durable before reporting it.
                f.sync().map_err(Error::io("syncing", &t.path))?;
                if t.version < wal::WAL_VERSION {
                    // An older segment is never appended to: its reader would misread the
                    // newer records. Its records stay; new ones go to a new segment.
                    drop(f);
                    directory::new_segment(storage, dir, replay.seq + 1, &replay.chain)?
                } else {
                    segment_bytes = t.valid_len;
                    f
                }
            }
            Some(t) if t.header_torn => {
                // A segment whose header never reached the disk (crash while starting it).
                let name = t
                    .path
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                if parse_segment_name(&name) != Some(replay.seq + 1) {
                    return Err(Error::corrupt(&t.path, 0, "segment header is incomplete"));
                }
                storage
                    .remove(&t.path)
                    .map_err(Error::io("removing", &t.path))?;
                if t.file_len > 0 {
                    torn_tail = Some(TornTail {
                        offset: 0,
                        bytes: t.file_len,
                        reason: t
                            .damage
                            .unwrap_or_else(|| "segment header is incomplete".into()),
                        file: t.path.clone(),
                    });
                }
                directory::new_segment(storage, dir, replay.seq + 1, &replay.chain)?
            }
            Some(t) if t.end_seq > replay.seq => {
                return Err(Error::corrupt(
                    &t.path,
                    8,
                    format!(
                        "segment does not continue the log recovered through sequence number {} (it ends at {}, or its chain value differs)",
                        replay.seq,
                        t.end_seq - 1
                    ),
                ));
            }
            // No segment, or only segments the snapshot already covers (a checkpoint
            // interrupted before it started the next segment or removed the old ones).
            covered => {
                let f = directory::new_segment(storage, dir, replay.seq + 1, &replay.chain)?;
                // Finish that checkpoint: what retention no longer needs goes. A damaged end
                // of a covered segment is reported.
                directory::prune(storage, dir, options.retention())?;
                if let Some(t) = covered {
                    if let Some(reason) = t.damage {
                        torn_tail = Some(TornTail {
                            offset: t.valid_len,
                            bytes: t.file_len - t.valid_len,
                            reason,
                            file: t.path,
                        });
                    }
                }
                f
            }
        };
        // Every file recovery keeps or created is in the directory for good.
        storage
            .sync_dir(dir)
            .map_err(Error::io("syncing directory", dir))?;
        Some(f)
    };
    let report = RecoveryReport {
        snapshot_seq: snap_seq,
        replayed: replay.seq - snap_seq,
        seq: replay.seq,
        torn_tail,
    };
    Ok(Recovered {
        kernel: replay.kernel,
        seq: replay.seq,
        chain: replay.chain,
        snapshot_seq: snap_seq,
        segment: file,
        segment_bytes,
        salvage: salvage_report,
        report,
    })
}

/// In salvage mode, records the first damage and carries on; otherwise returns it.
fn salvage_or(
    options: &Options,
    e: Error,
    report: &mut Option<SalvageReport>,
    seq: u64,
) -> Result<()> {
    match e {
        Error::Corrupt {
            file,
            offset,
            reason,
        } if options.salvage => {
            if report.is_none() {
                *report = Some(SalvageReport {
                    file,
                    offset,
                    reason,
                    recovered_seq: seq,
                });
            }
            Ok(())
        }
        other => Err(other),
    }
}

fn check_config(found: Config, options: &Options) -> Result<()> {
    if let Some(dim) = options.dim.filter(|&d| d != found.dim) {
        return Err(Error::Mismatch(format!(
            "the database holds {}-dimensional vectors, the options say {dim}",
            found.dim
        )));
    }
    if let Some(metric) = options.metric.filter(|&m| m != found.metric) {
        return Err(Error::Mismatch(format!(
            "the database uses the {} metric, the options say {metric}",
            found.metric
        )));
    }
    Ok(())
}

/// An index asked for must be the database's (or the database has none yet).
pub(crate) fn check_index(found: Option<IndexParams>, options: &Options) -> Result<()> {
    match (found, options.index) {
        (Some(f), Some(o)) if f != o => Err(Error::Mismatch(format!(
            "the database's index has m = {} and ef_construction = {}, the options say m = {} and ef_construction = {}",
            f.m, f.ef_construction, o.m, o.ef_construction
        ))),
        _ => Ok(()),
    }
}

fn create(
    storage: &dyn Storage,
    dir: &Path,
    options: &Options,
    listing: &Listing,
) -> Result<Recovered> {
    if let Some((_, name)) = listing.segments.first() {
        return Err(Error::corrupt(
            dir.join(name),
            0,
            "WAL segment without any snapshot",
        ));
    }
    let dim = match options.dim {
        Some(dim) if options.create && !options.salvage => dim,
        _ => {
            return Err(Error::NoDatabase {
                path: dir.to_path_buf(),
            })
        }
    };
    let mut kernel = Kernel::new(Config::new(dim, options.metric.unwrap_or(Metric::L2))?)?;
    kernel.set_index(options.index)?;
    let chain = genesis_chain();
    let segment =
        directory::install_checkpoint(storage, dir, 0, &chain, &kernel, Retention::NEWEST)?;
    // The directory itself may be new: make its entry durable too.
    directory::sync_parent(storage, dir)?;
    Ok(Recovered {
        kernel,
        seq: 0,
        chain,
        snapshot_seq: 0,
        segment: Some(segment),
        segment_bytes: wal::SEGMENT_HEADER_LEN as u64,
        salvage: None,
        report: RecoveryReport::default(),
    })
}
