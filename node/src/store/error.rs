//! The store's one error type, [`StoreError`]: what the store was doing and why it
//! failed, with the path when a file was involved. Every message is whole in its
//! `Display` (the cause included, once), so a log line or an operator's terminal shows
//! all of it however it is printed.

use std::fmt::Display;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed an operation.
    #[error("{what}: {cause}")]
    Sqlite { what: String, cause: rusqlite::Error },
    /// A file or folder operation failed (the message names the path).
    #[error("{what}: {cause}")]
    Io { what: String, cause: std::io::Error },
    /// Something the store holds does not read back (a body, a hop list, a hash).
    #[error("{what}: {cause}")]
    Corrupt { what: String, cause: String },
    /// The store cannot be used as asked: another node's store, a newer schema, a
    /// folder in use by a running daemon, no store yet, a backup that would overwrite.
    #[error("{0}")]
    Refused(String),
    /// A store operation failed inside a larger one, named here.
    #[error("{what}: {cause}")]
    Within { what: String, cause: Box<StoreError> },
    /// A file operation of the store's (backup, restore, its folder) failed.
    #[error(transparent)]
    File(#[from] crate::fsx::FileError),
    /// The writer thread is gone.
    #[error(transparent)]
    WriterGone(#[from] super::WriterGone),
}

/// The store's results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// Data in the store that does not read back.
    pub fn corrupt(what: impl Display, cause: impl Display) -> StoreError {
        StoreError::Corrupt { what: what.to_string(), cause: cause.to_string() }
    }

    /// The SQLite error underneath, if any.
    pub fn sqlite(&self) -> Option<&rusqlite::Error> {
        match self {
            StoreError::Sqlite { cause, .. } => Some(cause),
            StoreError::Within { cause, .. } => cause.sqlite(),
            _ => None,
        }
    }

    /// Whether SQLite stopped the query because it was interrupted (a deadline).
    pub fn was_interrupted(&self) -> bool {
        self.sqlite().is_some_and(|e| e.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted))
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(cause: rusqlite::Error) -> StoreError {
        StoreError::Sqlite { what: "SQLite".into(), cause }
    }
}

/// An error a store operation can meet, turned into a [`StoreError`] that says what
/// was being done.
pub trait Cause {
    fn doing(self, what: String) -> StoreError;
}

impl Cause for rusqlite::Error {
    fn doing(self, what: String) -> StoreError {
        StoreError::Sqlite { what, cause: self }
    }
}

impl Cause for std::io::Error {
    fn doing(self, what: String) -> StoreError {
        StoreError::Io { what, cause: self }
    }
}

impl Cause for serde_json::Error {
    fn doing(self, what: String) -> StoreError {
        StoreError::Corrupt { what, cause: self.to_string() }
    }
}

impl Cause for std::str::Utf8Error {
    fn doing(self, what: String) -> StoreError {
        StoreError::Corrupt { what, cause: self.to_string() }
    }
}

impl Cause for StoreError {
    fn doing(self, what: String) -> StoreError {
        StoreError::Within { what, cause: Box::new(self) }
    }
}

/// `anyhow`-style context for the store's own error type.
pub trait Context<T> {
    fn context(self, what: impl Display) -> Result<T>;
    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T>;
}

impl<T, E: Cause> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl Display) -> Result<T> {
        self.map_err(|e| e.doing(what.to_string()))
    }

    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| e.doing(what().to_string()))
    }
}

/// Returns a [`StoreError::Refused`] with a formatted message.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::store::StoreError::Refused(format!($($arg)*)))
    };
}
pub(crate) use bail;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_says_what_was_done_and_why_once() {
        let e: Result<()> = Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no such file")).context("cannot open /x/huijiao.db");
        let e = e.context("cannot open the store").unwrap_err();
        assert_eq!(e.to_string(), "cannot open the store: cannot open /x/huijiao.db: no such file");
        assert!(std::error::Error::source(&e).is_none(), "the cause is printed, not chained a second time");
        let interrupted = StoreError::from(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error { code: rusqlite::ErrorCode::OperationInterrupted, extended_code: 9 },
            None,
        ));
        assert!(interrupted.doing("a listing".into()).was_interrupted());
        assert!(!e.was_interrupted());
    }
}
