//! The catalogue: a search index and filter columns over the store, in a database of
//! its own (`catalogue.db` beside `huijiao.db`), so indexing never holds a lock the
//! store's writer needs.
//!
//! It is a derived view: the indexer follows the store's change log with its own
//! cursor (kept in the catalogue, committed with what it indexed), catches up after a
//! crash from that cursor, and can be rebuilt from the store at any time (`huijiao
//! reindex`). Queries read the catalogue with the store attached read-only: every
//! body comes from the store, and the public view's checks (公开, not withdrawn, past
//! any embargo) are made on the store's own state, so an index a moment behind never
//! shows a record that is no longer public.
//!
//! Rooms: `schema` (the file, its tables, the store attached), `indexer` (the writer
//! and its thread), `listing` (views, filters, pages, totals), `stats` (counts by a
//! dimension), `export` (every match, streamed), `packages` (what a 科技成果包's
//! selection holds; a version's members, shown or gone), `oai` (when each record last
//! changed in the public view, for OAI-PMH).

mod export;
mod indexer;
mod listing;
mod oai;
mod packages;
mod schema;
mod stats;

pub use indexer::*;
pub use listing::*;
pub use oai::{OaiItem, OaiScope, OaiSet};
pub use packages::*;
use schema::*;

use super::error::{bail, Context, Result, StoreError};
use super::StoredRecord;
use crate::search;
use huijiao_protocol::record::{ip_type, IP_TRADE_SECRET};
use huijiao_protocol::{Date, Record, Secret};
use rusqlite::{params, params_from_iter, Connection, OpenFlags, OptionalExtension};
use std::path::{Path, PathBuf};

/// The catalogue's file in `data_dir`.
pub const CATALOGUE_FILE: &str = "catalogue.db";
