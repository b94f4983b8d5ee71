//! API keys: bearer tokens of two kinds, read-write and read-only, compared in constant time.
//!
//! A key file holds one key per line: `read-write KEY`, `read-only KEY`, or a bare `KEY`
//! (read-write); blank lines and lines starting with `#` are ignored. Keys are at least 16
//! characters of visible ASCII. The server keeps only their BLAKE3 hashes.

use crate::error::ApiError;
use std::path::Path;
use subtle::ConstantTimeEq;

/// What a key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// Reads and writes.
    ReadWrite,
    /// Reads only (search, get, export, metrics); writes answer 403.
    ReadOnly,
}

/// The shortest key accepted.
pub const MIN_KEY_LEN: usize = 16;

/// The server's keys (none: no authentication, allowed only on a loopback address).
#[derive(Clone, Debug, Default)]
pub struct Keys {
    hashed: Vec<([u8; 32], KeyKind)>,
}

impl Keys {
    /// No keys.
    pub fn none() -> Keys {
        Keys::default()
    }

    /// True when no key is configured (every request is allowed).
    pub fn is_empty(&self) -> bool {
        self.hashed.is_empty()
    }

    /// Adds a key; refuses one shorter than [`MIN_KEY_LEN`] or with other than visible ASCII.
    pub fn add(&mut self, key: &str, kind: KeyKind) -> Result<(), String> {
        if key.len() < MIN_KEY_LEN {
            return Err(format!(
                "an API key must be at least {MIN_KEY_LEN} characters (this one has {})",
                key.len()
            ));
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("an API key may hold only visible ASCII characters".into());
        }
        self.hashed
            .push((*blake3::hash(key.as_bytes()).as_bytes(), kind));
        Ok(())
    }

    /// Reads a key file (format in the module documentation).
    pub fn add_file(&mut self, path: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading the API key file {}: {e}", path.display()))?;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (kind, key) = match line.split_once(char::is_whitespace) {
                Some(("read-write", key)) => (KeyKind::ReadWrite, key.trim()),
                Some(("read-only", key)) => (KeyKind::ReadOnly, key.trim()),
                Some((other, _)) => {
                    return Err(format!(
                        "{} line {}: unknown key kind '{other}': use 'read-write KEY' or 'read-only KEY'",
                        path.display(),
                        i + 1
                    ))
                }
                None => (KeyKind::ReadWrite, line),
            };
            self.add(key, kind)
                .map_err(|e| format!("{} line {}: {e}", path.display(), i + 1))?;
        }
        Ok(())
    }

    /// The kind of the key in an `Authorization` header value, comparing against every key
    /// in constant time (the time does not depend on which key matched, or how much of one).
    pub fn check(&self, authorization: Option<&[u8]>) -> Result<Option<KeyKind>, ApiError> {
        if self.is_empty() {
            return Ok(None);
        }
        // The scheme name is case-insensitive (RFC 9110 §11.1).
        let token = authorization
            .and_then(|h| match (h.get(..7), h.get(7..)) {
                (Some(scheme), Some(token))
                    if scheme.eq_ignore_ascii_case(b"bearer ") && !token.is_empty() =>
                {
                    Some(token)
                }
                _ => None,
            })
            .ok_or_else(ApiError::unauthorized)?;
        let presented = blake3::hash(token);
        let mut found = None;
        for (hash, kind) in &self.hashed {
            if bool::from(hash.ct_eq(presented.as_bytes())) {
                // Keep looking at the rest all the same: no early exit.
                found = found.or(Some(*kind));
            }
        }
        found.map(Some).ok_or_else(ApiError::unauthorized)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn kinds_short_keys_and_bad_headers() {
        let mut k = Keys::none();
        assert_eq!(k.check(None).unwrap(), None, "no keys: open");
        k.add("rw-key-0123456789", KeyKind::ReadWrite).unwrap();
        k.add("ro-key-0123456789", KeyKind::ReadOnly).unwrap();
        assert!(k.add("short", KeyKind::ReadWrite).is_err());
        assert!(k.add("has a space 0123456789", KeyKind::ReadWrite).is_err());
        assert_eq!(
            k.check(Some(b"Bearer rw-key-0123456789")).unwrap(),
            Some(KeyKind::ReadWrite)
        );
        assert_eq!(
            k.check(Some(b"Bearer ro-key-0123456789")).unwrap(),
            Some(KeyKind::ReadOnly)
        );
        assert_eq!(
            k.check(Some(b"bearer ro-key-0123456789")).unwrap(),
            Some(KeyKind::ReadOnly)
        );
        for bad in [
            None,
            Some(&b"Bearer rw-key-012345678"[..]),
            Some(b"rw-key-0123456789"),
            Some(b"Basic rw-key-0123456789"),
            Some(b"Bearer "),
        ] {
            let e = k.check(bad).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::UNAUTHORIZED);
        }
    }

    #[test]
    fn key_file_lines() {
        let dir = std::env::temp_dir().join(format!("valori-keys-{}", std::process::id()));
        std::fs::write(
            &dir,
            "# keys\n\nbare-key-0123456789\nread-only ro-key-0123456789\nread-write  rw-key-0123456789\n",
        )
        .unwrap();
        let mut k = Keys::none();
        k.add_file(&dir).unwrap();
        assert_eq!(
            k.check(Some(b"Bearer bare-key-0123456789")).unwrap(),
            Some(KeyKind::ReadWrite)
        );
        assert_eq!(
            k.check(Some(b"Bearer ro-key-0123456789")).unwrap(),
            Some(KeyKind::ReadOnly)
        );
        std::fs::write(&dir, "admin key-0123456789abcdef\n").unwrap();
        let e = Keys::none().add_file(&dir).unwrap_err();
        assert!(
            e.contains("line 1") && e.contains("unknown key kind"),
            "{e}"
        );
        std::fs::remove_file(&dir).unwrap();
    }
}
