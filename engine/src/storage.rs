//! The engine's only door to files. Production uses [`FsStorage`]; tests substitute
//! [`crate::sim::SimStorage`] (power loss) or [`crate::sim::FaultStorage`] (I/O errors).

use std::any::Any;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// A held lock; dropping it releases the lock.
pub type LockGuard = Box<dyn Any + Send + Sync>;

/// File-system operations the engine needs. Paths are absolute or relative to the process.
pub trait Storage: Send + Sync + Debug {
    /// Creates a directory and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Names of the entries of a directory.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// The whole content of a file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// A file's content as a stream (by default, [`Storage::read`] in memory).
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn io::Read + Send>> {
        Ok(Box::new(io::Cursor::new(self.read(path)?)))
    }
    /// A reader of a file from byte `offset` on (by default: [`Storage::open_read`] with the
    /// bytes before `offset` read and dropped).
    fn open_read_at(&self, path: &Path, offset: u64) -> io::Result<Box<dyn io::Read + Send>> {
        let mut r = self.open_read(path)?;
        io::copy(&mut io::Read::take(&mut r, offset), &mut io::sink())?;
        Ok(r)
    }
    /// A file's last modification time (for time-based retention); by default unknown
    /// (`Unsupported`), and retention then keeps the file.
    fn modified(&self, path: &Path) -> io::Result<std::time::SystemTime> {
        let _ = path;
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
    /// A file's size in bytes (by default, the length of [`Storage::read`]).
    fn size(&self, path: &Path) -> io::Result<u64> {
        self.read(path).map(|b| b.len() as u64)
    }
    /// Creates (or truncates) a file for appending, mode 0600.
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Opens an existing file for appending.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Atomically renames a file.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creates, renames, removes) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Takes an exclusive lock on `path` (created if missing, mode 0600); `None` if another
    /// holder (any process, or another handle in this one) has it.
    fn try_lock(&self, path: &Path) -> io::Result<Option<LockGuard>>;
    /// Like [`Storage::try_lock`] but never creates or writes anything (a salvage open of a
    /// read-only directory): an error of kind `NotFound` if there is no lock file.
    fn try_lock_existing(&self, path: &Path) -> io::Result<Option<LockGuard>> {
        self.try_lock(path)
    }
}

/// An open file that the engine appends to.
pub trait StorageFile: Send + Sync {
    /// Appends all of `data`.
    fn append(&mut self, data: &[u8]) -> io::Result<()>;
    /// Makes everything appended so far durable (fdatasync).
    fn sync(&mut self) -> io::Result<()>;
    /// Cuts the file to `len` bytes.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct FsStorage;

fn options() -> OpenOptions {
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o
}

struct FsFile(File);

impl StorageFile for FsFile {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.0.write_all(data)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
}

impl Storage for FsStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for e in fs::read_dir(dir)? {
            names.push(e?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }
    fn size(&self, path: &Path) -> io::Result<u64> {
        fs::metadata(path).map(|m| m.len())
    }
    fn modified(&self, path: &Path) -> io::Result<std::time::SystemTime> {
        fs::metadata(path)?.modified()
    }
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn io::Read + Send>> {
        Ok(Box::new(io::BufReader::with_capacity(
            1 << 20,
            File::open(path)?,
        )))
    }
    fn open_read_at(&self, path: &Path, offset: u64) -> io::Result<Box<dyn io::Read + Send>> {
        let mut f = File::open(path)?;
        io::Seek::seek(&mut f, io::SeekFrom::Start(offset))?;
        Ok(Box::new(io::BufReader::with_capacity(1 << 20, f)))
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let f = options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(FsFile(f)))
    }
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let f = OpenOptions::new().append(true).open(path)?;
        Ok(Box::new(FsFile(f)))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
    fn try_lock(&self, path: &Path) -> io::Result<Option<LockGuard>> {
        // flock(2): per open file description, so a second handle in this process conflicts
        // too; released by the kernel when the holder dies.
        let f = options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        flock(f)
    }
    fn try_lock_existing(&self, path: &Path) -> io::Result<Option<LockGuard>> {
        flock(File::open(path)?)
    }
}

fn flock(f: File) -> io::Result<Option<LockGuard>> {
    match f.try_lock() {
        Ok(()) => Ok(Some(Box::new(f))),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(e)) => Err(e),
    }
}
