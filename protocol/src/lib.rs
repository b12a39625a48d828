//! huijiao-protocol: everything two huijiao nodes, or a node and an office file, must
//! agree on — without doing any IO.
//!
//! Layout:
//! - [`regions`]: the GB/T 2260 table and the jurisdiction rule.
//! - [`date`]: calendar dates in Beijing time, every date form of the spec.
//! - [`codes`]: names of discipline (GB/T 13745) and industry (GB/T 4754) codes.
//! - [`fields`]: the columns of the submission format and header matching.
//! - [`record`]: the validated record, its canonical JSON, hash and public view.
//! - [`secrecy`]: fail-closed reading of 密级 markings.
//! - [`validate`]: row validation, one error per broken rule.
//! - [`report`]: the per-file report of spec §5.
//! - [`table`]: a record as a row of the format's columns, and the CSV rows are written in.
//! - [`wire`]: the federation wire format (frames, messages, changes).
//! - [`sync`]: the sync session state machines and the checks a parent applies.
//!
//! Architecture invariant: nothing here touches files, sockets, clocks or threads;
//! callers pass `today` and bytes in.

pub mod apply;
pub mod codes;
pub mod date;
pub mod fields;
pub mod raw;
pub mod record;
pub mod regions;
pub mod registration;
pub mod report;
pub mod secrecy;
pub mod table;
pub mod validate;

pub use date::Date;
pub use fields::Field;
pub use record::{Kind, Record, Secret};
pub use regions::RegionTable;
pub use report::{Refusal, Report, RowError, Warning};
pub use validate::{RawRow, RawValue, Row, Validator};
pub mod sync;
pub mod wire;
