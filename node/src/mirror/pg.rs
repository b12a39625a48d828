//! The mirror's side in PostgreSQL: its schema (records by `reg_no` with a typed
//! column per spec key, the change history, the mirror's own row with its cursor),
//! one lock per schema, and a batch applied in one transaction — new rows by COPY,
//! changed ones by COPY into a staging table and one upsert, the history by COPY, the
//! cursor with them — so a kill of either side, or PostgreSQL restarting, loses and
//! repeats nothing.

use super::{copy, shows, View};
use crate::store::mirror::LogChange;
use crate::store::StoredRecord;
use anyhow::Context;
use axum::body::Bytes;
use futures_util::SinkExt;
use serde_json::{Map, Value};
use tokio_postgres::Client;

/// The typed columns of `records`, after `reg_no, version, withdrawn, origin`: each
/// spec key and its PostgreSQL type.
const FIELDS: [(&str, &str); 25] = [
    ("title", "text"),
    ("kind", "text"),
    ("region", CODE),
    ("reg_date", "date"),
    ("first_unit", "text"),
    ("units", "text[]"),
    ("persons", "text[]"),
    ("keywords", "text[]"),
    ("discipline", CODE),
    ("industry", CODE),
    ("stage", "text"),
    ("level", "text"),
    ("trl", "integer"),
    ("task_source", "text"),
    ("plan_no", "text"),
    ("fiscal_funded", "boolean"),
    ("ip", "text[]"),
    ("transfer", "text"),
    ("abstract", "text"),
    ("funding", "numeric"),
    ("benefit", "numeric"),
    ("contact", "text"),
    ("phone", "text"),
    ("secret", "text"),
    ("embargo_until", "date"),
];

/// A code (region, discipline, industry): text compared byte by byte (`COLLATE "C"`),
/// the codes' own order, cheaper to index than a locale's, and usable by an index for
/// `LIKE '42%'`.
const CODE: &str = "code";

pub use crate::config::schema_ok;

/// The DDL of a mirror's schema (idempotent).
fn ddl(s: &str) -> String {
    let cols: Vec<String> = FIELDS.iter().map(|(k, t)| format!("{k} {}", if *t == CODE { "text COLLATE \"C\"" } else { t })).collect();
    format!(
        "CREATE SCHEMA IF NOT EXISTS {s};
         CREATE TABLE IF NOT EXISTS {s}.records (
             reg_no text COLLATE \"C\" PRIMARY KEY, version bigint NOT NULL, withdrawn boolean NOT NULL, origin text COLLATE \"C\" NOT NULL,
             {}, record jsonb NOT NULL, provenance jsonb NOT NULL, updated_at timestamptz NOT NULL)
             WITH (toast_tuple_target = 8160);
         CREATE TABLE IF NOT EXISTS {s}.changes (
             seq bigint PRIMARY KEY, reg_no text COLLATE \"C\" NOT NULL, version bigint NOT NULL, op text NOT NULL,
             origin text COLLATE \"C\" NOT NULL, region text COLLATE \"C\" NOT NULL, accepted_at timestamptz NOT NULL, hops jsonb NOT NULL);
         CREATE TABLE IF NOT EXISTS {s}.mirror (
             id integer PRIMARY KEY CHECK (id = 1), node_id text NOT NULL, view text NOT NULL, log_id text NOT NULL,
             cursor bigint NOT NULL, swept date, updated_at timestamptz NOT NULL);
         {}",
        cols.join(", "),
        indexes(s)
    )
}

/// The secondary indexes (beside the primary keys), by name and definition.
const INDEXES: [(&str, &str); 4] = [
    ("records_region_date", "records (region, reg_date)"),
    ("records_date", "records (reg_date)"),
    ("records_industry", "records (industry)"),
    ("changes_reg_no", "changes (reg_no, seq)"),
];

/// The statements that create the secondary indexes that are missing.
fn indexes(s: &str) -> String {
    INDEXES.iter().map(|(name, on)| format!("CREATE INDEX IF NOT EXISTS {name} ON {s}.{on};")).collect::<Vec<_>>().join("\n")
}

/// A connected mirror holding its schema's lock.
pub struct Pg {
    pub client: Client,
    schema: String,
    view: View,
    /// Filling an empty schema from the start of a log: the secondary indexes are
    /// dropped with the first batch and built once, when caught up (see
    /// [`Pg::caught_up`]); a mirror stopped before that builds them when it next
    /// starts, and goes on with them.
    loading: Loading,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loading {
    No,
    /// Empty; the indexes are dropped with the first batch.
    Empty,
    /// The indexes are dropped; built when caught up.
    Unindexed,
}

/// Where the mirror stands in PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub log_id: String,
    pub cursor: i64,
    pub swept: Option<String>,
}

/// Connects to `url` (a `postgresql://` URL or `key=value` pairs), without TLS.
pub async fn connect(url: &str) -> anyhow::Result<Client> {
    let config: tokio_postgres::Config = url.parse().context("not a PostgreSQL connection URL")?;
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.context("cannot connect to PostgreSQL")?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!("the PostgreSQL connection ended: {e}");
        }
    });
    Ok(client)
}

impl Pg {
    /// Takes the schema's lock (one mirror per schema), creates what is missing and
    /// checks that the schema mirrors this node in this view.
    pub async fn prepare(client: Client, schema: &str, view: View, node_id: &str) -> anyhow::Result<Pg> {
        anyhow::ensure!(schema_ok(schema), "schema `{schema}`: 1 to 63 of a–z, 0–9 and _, not starting with a digit");
        let locked: bool =
            client.query_one("SELECT pg_try_advisory_lock(hashtext('huijiao-mirror:' || $1::text))", &[&schema]).await?.get(0);
        anyhow::ensure!(locked, "another mirror is following schema `{schema}` (one mirror per schema)");
        client.batch_execute(&ddl(schema)).await.with_context(|| format!("cannot create schema `{schema}`"))?;
        client
            .execute(
                &format!("INSERT INTO {schema}.mirror (id, node_id, view, log_id, cursor, updated_at) VALUES (1, $1, $2, '', 0, now()) ON CONFLICT (id) DO NOTHING"),
                &[&node_id, &view.as_str()],
            )
            .await?;
        let row = client.query_one(&format!("SELECT node_id, view FROM {schema}.mirror WHERE id = 1"), &[]).await?;
        let (node, held): (String, String) = (row.get(0), row.get(1));
        anyhow::ensure!(node == node_id, "schema `{schema}` mirrors node {node}, not {node_id}: give this node a schema of its own");
        anyhow::ensure!(
            held == view.as_str(),
            "schema `{schema}` holds the {held} view; this mirror is configured for the {} view: use another schema",
            view.as_str()
        );
        lz4_values(&client, schema).await;
        client.batch_execute(&format!("CREATE TEMP TABLE IF NOT EXISTS hj_stage (LIKE {schema}.records) ON COMMIT DELETE ROWS")).await?;
        // Empty, and the mirror's role owns the table (only an owner drops and builds
        // indexes; a schema made by someone else keeps its indexes all along).
        let empty: bool = client
            .query_one(
                &format!(
                    "SELECT m.cursor = 0 AND NOT EXISTS (SELECT 1 FROM {schema}.records) AND pg_has_role(c.relowner, 'USAGE') \
                     FROM {schema}.mirror m, pg_class c WHERE m.id = 1 AND c.oid = '{schema}.records'::regclass"
                ),
                &[],
            )
            .await?
            .get(0);
        let loading = if empty { Loading::Empty } else { Loading::No };
        Ok(Pg { client, schema: schema.to_string(), view, loading })
    }

    pub async fn state(&self) -> anyhow::Result<State> {
        let r = self.client.query_one(&format!("SELECT log_id, cursor, swept::text FROM {}.mirror WHERE id = 1", self.schema), &[]).await?;
        Ok(State { log_id: r.get(0), cursor: r.get(1), swept: r.get(2) })
    }

    /// Applies one batch in one transaction: the records as they are now (upserted;
    /// in the public view, those not public removed), the changes (operator view),
    /// and the cursor. `reset` empties the tables first (a new log in the store).
    pub async fn apply(&mut self, b: &Batch) -> anyhow::Result<()> {
        let s = self.schema.clone();
        let view = self.view;
        let tx = self.client.transaction().await?;
        if b.reset {
            tx.batch_execute(&format!("TRUNCATE {s}.records, {s}.changes")).await?;
        }
        // A catch-up from nothing: each row goes in without the secondary indexes,
        // built once at the end (about a tenth of the catch-up's time saved).
        let unindexed = self.loading == Loading::Empty && b.changes >= super::BATCH;
        if unindexed {
            let names: Vec<String> = INDEXES.iter().map(|(name, _)| format!("{s}.{name}")).collect();
            tx.batch_execute(&format!("DROP INDEX IF EXISTS {}", names.join(", "))).await?;
        }
        let (shown, hidden): (Vec<&RecordRow>, Vec<&RecordRow>) = b.records.iter().partition(|r| r.copy.is_some());
        if !shown.is_empty() {
            // Records new to the mirror go straight in by COPY (a catch-up is almost
            // all of them); those it holds go through the staging table and one upsert.
            let numbers: Vec<&str> = shown.iter().map(|r| r.reg_no.as_str()).collect();
            let held: std::collections::HashSet<String> = tx
                .query(&format!("SELECT reg_no FROM {s}.records WHERE reg_no = ANY($1)"), &[&numbers])
                .await?
                .into_iter()
                .map(|row| row.get(0))
                .collect();
            let (update, insert): (Vec<&RecordRow>, Vec<&RecordRow>) = shown.iter().partition(|r| held.contains(&r.reg_no));
            if !insert.is_empty() {
                copy(tx.copy_in(&format!("COPY {s}.records FROM STDIN (FORMAT binary)")).await?, joined(&insert)).await?;
            }
            if !update.is_empty() {
                copy(tx.copy_in("COPY hj_stage FROM STDIN (FORMAT binary)").await?, joined(&update)).await?;
                let set: Vec<String> = std::iter::once("version")
                    .chain(["withdrawn", "origin"])
                    .chain(FIELDS.iter().map(|(k, _)| *k))
                    .chain(["record", "provenance", "updated_at"])
                    .map(|c| format!("{c} = EXCLUDED.{c}"))
                    .collect();
                tx.execute(
                    &format!("INSERT INTO {s}.records SELECT * FROM hj_stage ON CONFLICT (reg_no) DO UPDATE SET {}", set.join(", ")),
                    &[],
                )
                .await?;
            }
        }
        let mut gone: Vec<&str> = hidden.iter().map(|r| r.reg_no.as_str()).collect();
        gone.extend(b.missing.iter().map(String::as_str));
        if !gone.is_empty() {
            tx.execute(&format!("DELETE FROM {s}.records WHERE reg_no = ANY($1)"), &[&gone]).await?;
        }
        if view == View::Operator && !b.change_rows.is_empty() {
            copy(tx.copy_in(&format!("COPY {s}.changes FROM STDIN (FORMAT binary)")).await?, b.change_rows.clone()).await?;
        }
        tx.execute(
            &format!(
                "UPDATE {s}.mirror SET log_id = $1, cursor = $2, swept = coalesce($3::text::date, swept), updated_at = now() WHERE id = 1"
            ),
            &[&b.log_id, &b.cursor, &b.swept],
        )
        .await?;
        tx.commit().await?;
        if unindexed {
            self.loading = Loading::Unindexed;
        } else if self.loading == Loading::Empty {
            self.loading = Loading::No;
        }
        Ok(())
    }

    /// Called when the mirror has caught up with the store: builds the secondary
    /// indexes a catch-up from nothing went without.
    pub async fn caught_up(&mut self) -> anyhow::Result<()> {
        if self.loading == Loading::Unindexed {
            let t = std::time::Instant::now();
            self.client.batch_execute(&indexes(&self.schema)).await.context("cannot build the mirror's indexes")?;
            tracing::info!(schema = %self.schema, secs = t.elapsed().as_secs_f64(), "caught up: the mirror's indexes are built");
        }
        self.loading = Loading::No;
        Ok(())
    }
}

/// The columns of `records` that carry a record's large values. A new schema keeps
/// its rows (about 2.4 KB) whole and uncompressed in the table (`toast_tuple_target`
/// 8160: no compression or out-of-line copy as they go in, a catch-up about a fifth
/// faster); a row over 8 KB, or any row of a schema made before, has these compressed,
/// with lz4 (PostgreSQL 14 and later, when built with it, as Debian's is: half again
/// as fast as the default pglz, and faster to read back). Set once per schema (a
/// mirror schema made before is changed the first time a mirror opens it; values
/// already stored stay as they are); a server without lz4 keeps pglz.
const LARGE: [&str; 3] = ["record", "provenance", "abstract"];

async fn lz4_values(client: &Client, schema: &str) {
    let set = async {
        let version: i32 = client.query_one("SELECT current_setting('server_version_num')::int", &[]).await?.get(0);
        if version < 140_000 {
            return Ok::<_, anyhow::Error>(false);
        }
        let names: Vec<&str> = LARGE.to_vec();
        let pending: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_attribute WHERE attrelid = $1::text::regclass AND attname = ANY($2) AND attcompression <> 'l'",
                &[&format!("{schema}.records"), &names],
            )
            .await?
            .get(0);
        if pending > 0 {
            let alter: Vec<String> = LARGE.iter().map(|c| format!("ALTER COLUMN {c} SET COMPRESSION lz4")).collect();
            client.batch_execute(&format!("ALTER TABLE {schema}.records {}", alter.join(", "))).await?;
        }
        Ok(true)
    };
    match set.await {
        Ok(true) => {}
        Ok(false) => tracing::info!(schema, "PostgreSQL before 14: the mirror's large values keep pglz compression"),
        Err(e) => tracing::info!(schema, "the mirror's large values keep pglz compression (no lz4 in this PostgreSQL): {e:#}"),
    }
}

/// Sends one COPY's data and finishes it.
async fn copy(sink: tokio_postgres::CopyInSink<Bytes>, buf: impl Into<Bytes>) -> anyhow::Result<()> {
    let mut sink = std::pin::pin!(sink);
    sink.send(buf.into()).await?;
    sink.as_mut().finish().await?;
    Ok(())
}

/// Each record's row of `records` when the view shows it; otherwise only its number,
/// for the record to be removed.
pub fn record_rows(view: View, today: huijiao_protocol::Date, records: &[StoredRecord]) -> Vec<RecordRow> {
    records
        .iter()
        .map(|r| {
            let copy = shows(view, r, today).then(|| {
                let mut buf = Vec::with_capacity(2048);
                record_row(&mut buf, r, view);
                buf
            });
            RecordRow { reg_no: r.record.reg_no.clone(), copy }
        })
        .collect()
}

/// The COPY rows of `changes` for the `changes` table.
pub fn change_rows(changes: &[LogChange]) -> Bytes {
    Bytes::from(copy::stream(changes.len() * 200, |buf| {
        for c in changes {
            change_row(buf, c);
        }
    }))
}

/// One record of a batch: its `records` row, or `None` when the view does not show it.
#[derive(Debug)]
pub struct RecordRow {
    pub reg_no: String,
    pub copy: Option<Vec<u8>>,
}

/// The rows of `rows` as one COPY's data.
fn joined(rows: &[&RecordRow]) -> Vec<u8> {
    let size: usize = rows.iter().map(|r| r.copy.as_ref().map_or(0, Vec::len)).sum();
    copy::stream(size, |buf| {
        for r in rows {
            buf.extend_from_slice(r.copy.as_deref().unwrap_or_default());
        }
    })
}

/// One batch for [`Pg::apply`], its rows already built.
#[derive(Debug)]
pub struct Batch {
    /// How many changes of the log it covers.
    pub changes: usize,
    /// Their rows of `changes` (operator view; empty in the public view).
    pub change_rows: Bytes,
    /// The records the changes touched, as the store holds them now.
    pub records: Vec<RecordRow>,
    /// Touched records the store no longer has (a restored store): removed.
    pub missing: Vec<String>,
    pub cursor: i64,
    pub log_id: String,
    pub reset: bool,
    /// The day the public view's embargo sweep reached (public view).
    pub swept: Option<String>,
    pub today: huijiao_protocol::Date,
}

/// A record's row of `records`, in the table's column order, from its JSON as the
/// view shows it.
fn record_row(buf: &mut Vec<u8>, r: &StoredRecord, view: View) {
    let mut json: Map<String, Value> = match view {
        View::Public => r.record.public_json(),
        View::Operator => match serde_json::to_value(&r.record) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        },
    };
    json.values_mut().for_each(without_nul);
    let updated = crate::clock::rfc3339_china(r.updated_at);
    let provenance = match view {
        View::Operator => serde_json::json!({
            "origin": r.origin, "version": r.version, "withdrawn": r.withdrawn, "updated_at": updated,
            "hops": r.hops.iter().map(|(n, at)| serde_json::json!({"node": n, "accepted_at": crate::clock::rfc3339_china(*at), "accepted_at_ms": at})).collect::<Vec<_>>(),
        }),
        View::Public => serde_json::json!({"origin": r.origin, "version": r.version, "updated_at": updated}),
    };
    copy::tuple(buf, (4 + FIELDS.len() + 3) as i16);
    copy::text(buf, &r.record.reg_no);
    copy::int8(buf, r.version);
    copy::boolean(buf, r.withdrawn);
    copy::text(buf, &r.origin);
    for (k, t) in FIELDS {
        typed(buf, t, json.get(k));
    }
    copy::jsonb(buf, &Value::Object(json));
    copy::jsonb(buf, &provenance);
    copy::timestamptz_ms(buf, r.updated_at);
}

/// PostgreSQL's `text`, and the strings of its `jsonb`, cannot hold U+0000, which a
/// record's text can (a JSON drop's `\u0000`): it is left out, as the OAI-PMH feed
/// leaves out control characters, rather than PostgreSQL refusing the batch for ever.
fn without_nul(v: &mut Value) {
    match v {
        Value::String(s) if s.contains('\0') => s.retain(|c| c != '\0'),
        Value::Array(items) => items.iter_mut().for_each(without_nul),
        Value::Object(m) => m.values_mut().for_each(without_nul),
        _ => {}
    }
}

/// One typed column's field from the record's JSON value. A value that does not fit
/// its column (which a validated record cannot hold) is NULL.
fn typed(buf: &mut Vec<u8>, ty: &str, v: Option<&Value>) {
    match (ty, v) {
        (_, None | Some(Value::Null)) => copy::null(buf),
        ("text" | CODE, Some(Value::String(s))) => copy::text(buf, s),
        ("text" | CODE, Some(other)) => copy::text(buf, &other.to_string()),
        ("text[]", Some(Value::Array(items))) => {
            let items: Vec<&str> = items.iter().map(|i| i.as_str().unwrap_or_default()).collect();
            copy::text_array(buf, &items);
        }
        ("date", Some(Value::String(s))) => match huijiao_protocol::Date::parse(s) {
            Ok(d) => copy::date(buf, d),
            Err(_) => copy::null(buf),
        },
        ("integer", Some(v)) => match v.as_i64().and_then(|n| i32::try_from(n).ok()) {
            Some(n) => copy::int4(buf, n),
            None => copy::null(buf),
        },
        ("boolean", Some(Value::Bool(b))) => copy::boolean(buf, *b),
        ("numeric", Some(Value::Number(n))) => copy::numeric(buf, &n.to_string()),
        _ => copy::null(buf),
    }
}

fn change_row(buf: &mut Vec<u8>, c: &LogChange) {
    let hops: Vec<(String, i64)> = serde_json::from_str(&c.hops).unwrap_or_default();
    let hops = Value::Array(hops.iter().map(|(n, at)| serde_json::json!({"node": n, "accepted_at_ms": at})).collect());
    copy::tuple(buf, 8);
    copy::int8(buf, c.seq);
    copy::text(buf, &c.reg_no);
    copy::int8(buf, c.version);
    copy::text(buf, if c.withdraw { "withdraw" } else { "upsert" });
    copy::text(buf, &c.origin);
    copy::text(buf, &c.region);
    copy::timestamptz_ms(buf, c.accepted_at);
    copy::jsonb(buf, &hops);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_checked() {
        assert!(schema_ok("huijiao") && schema_ok("_x1") && !schema_ok("1x") && !schema_ok("Huijiao") && !schema_ok("a;drop"));
    }
}
