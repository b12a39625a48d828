//! Reading the catalogue: who is asking (`View`), filters, sorts, pages with a cursor,
//! totals exact or step-bounded, one record.

use super::*;

/// Who is asking: the public sees public records and fields only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Only what may be published on `today` (spec §3).
    Public {
        today: Date,
    },
    Operator,
}

/// Conditions every listed record meets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    /// A region code prefix (`42`, `4201`, `420102`).
    pub region: Option<String>,
    pub kind: Option<String>,
    pub stage: Option<String>,
    pub level: Option<String>,
    pub discipline: Option<String>,
    pub industry: Option<String>,
    pub transfer: Option<String>,
    pub has_ip: Option<bool>,
    pub ip_type: Option<String>,
    pub trl_min: Option<u8>,
    pub trl_max: Option<u8>,
    pub since: Option<Date>,
    pub until: Option<Date>,
    pub fiscal_funded: Option<bool>,
    pub origin: Option<String>,
    pub reg_no: Option<String>,
    /// Only the records version `.1` of package `.0` froze (科技成果包).
    pub package: Option<(String, i64)>,
}

/// The order of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// Title matches first, then the rest; newest indexed first within each.
    Relevance,
    /// Latest `reg_date` first.
    Date,
    /// By region code, then by registration number.
    Region,
}

/// A listing request.
#[derive(Debug, Clone)]
pub struct Listing {
    pub q: Option<String>,
    pub filters: Filters,
    pub sort: Sort,
    pub limit: usize,
    pub cursor: Option<String>,
    pub view: View,
}

/// One listed record: the record, its bookkeeping, and its highlights.
#[derive(Debug, Clone)]
pub struct Hit {
    pub stored: StoredRecord,
    /// The title and a piece of the abstract with the query's terms marked (HTML).
    pub title_html: String,
    pub snippet_html: String,
    /// When neither shows a term: the public fields that matched, marked (HTML), e.g.
    /// `关键词：<mark>水稻</mark>` — why the record is in the list. Empty otherwise.
    pub matched_html: String,
}

/// A page of a listing.
#[derive(Debug, Clone)]
pub struct Page {
    pub hits: Vec<Hit>,
    /// How many records match in all: exact; or a lower bound (`total_capped`): past
    /// [`COUNT_CAP`] matches, or for a rare filter that the counting budget
    /// ([`COUNT_STEPS`]) did not get through; or an estimate (`total_estimated`) of a
    /// search the budget stopped, from the share of the catalogue it had counted.
    pub total: u64,
    pub total_capped: bool,
    pub total_estimated: bool,
    pub next_cursor: Option<String>,
}

/// A listing's total as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Total {
    n: u64,
    capped: bool,
    estimated: bool,
}

/// Counting stops here: a count of every match of a common word over ten million
/// records would cost more than the page itself.
pub const COUNT_CAP: u64 = 10_000;

/// Statistics that scan more records than this split the scan over two connections
/// (in unit tests almost always, so that their counts check the split).
pub(super) const PARALLEL_SCAN_FROM: i64 = if cfg!(test) { 10 } else { 200_000 };

/// How much work a listing's total may take to count, in steps of SQLite's virtual
/// machine (see [`Catalogue::count`]): enough for 10,000 matches of a search or of a
/// filter an index serves, so that totals under [`COUNT_CAP`] are exact.
pub const COUNT_STEPS: u64 = 400_000;
/// Counting stops after this long whatever its budget (see [`Catalogue::count`]).
pub(super) const COUNT_SAFETY: std::time::Duration = std::time::Duration::from_millis(250);
/// The progress handler's granularity, in steps.
pub(super) const COUNT_STEP: u64 = 1000;

/// What statistics group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// One level below the region filter; resolved to one of the next three before
    /// a query (by [`crate::publish::parse`]), provinces if not.
    Region,
    Province,
    Prefecture,
    County,
    Kind,
    Year,
    Stage,
    IndustrySection,
    Transfer,
    Level,
}

impl GroupBy {
    pub(super) fn expr(self) -> &'static str {
        match self {
            GroupBy::Region | GroupBy::Province => "substr(d.region, 1, 2) || '0000'",
            GroupBy::Prefecture => {
                "CASE WHEN substr(d.region, 3, 2) BETWEEN '90' AND '99' THEN d.region ELSE substr(d.region, 1, 4) || '00' END"
            }
            GroupBy::County => "d.region",
            GroupBy::Kind => "d.kind",
            GroupBy::Year => "CAST(d.year AS TEXT)",
            GroupBy::Stage => "coalesce(d.stage, '')",
            GroupBy::IndustrySection => "coalesce(substr(d.industry, 1, 1), '')",
            GroupBy::Transfer => "coalesce(d.transfer, '')",
            GroupBy::Level => "coalesce(d.level, '')",
        }
    }
}

/// A read connection to the catalogue (with the store attached).
pub struct Catalogue {
    pub(super) conn: Connection,
}

/// A cursor in a listing, opaque to callers: the tier (relevance), the sort key and
/// the doc id of the last record shown.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Cursor {
    tier: u8,
    key: String,
    id: i64,
}

impl Cursor {
    fn encode(&self) -> String {
        let raw = format!("{}\u{1f}{}\u{1f}{}", self.tier, self.key, self.id);
        huijiao_protocol::record::hex(raw.as_bytes())
    }

    fn decode(s: &str) -> Option<Cursor> {
        if s.len() % 2 != 0 || s.len() > 400 {
            return None;
        }
        let bytes: Option<Vec<u8>> = (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect();
        let raw = String::from_utf8(bytes?).ok()?;
        let mut parts = raw.split('\u{1f}');
        let tier = parts.next()?.parse().ok()?;
        let key = parts.next()?.to_string();
        let id = parts.next()?.parse().ok()?;
        Some(Cursor { tier, key, id })
    }
}

/// Why a listing cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ListingError {
    #[error("cursor: not a cursor this listing gave out")]
    BadCursor,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for ListingError {
    fn from(e: rusqlite::Error) -> Self {
        ListingError::Store(e.into())
    }
}

impl ListingError {
    /// Whether the query stopped because [`Catalogue::interrupt_handle`] interrupted it.
    pub fn was_interrupted(&self) -> bool {
        matches!(self, ListingError::Store(e) if e.was_interrupted())
    }
}

/// SQL conditions with their arguments. Placeholders are plain `?`, bound in the
/// order they appear: whatever a query puts before the conditions binds first.
#[derive(Default)]
pub(super) struct Where {
    pub(super) sql: String,
    pub(super) args: Vec<rusqlite::types::Value>,
}

impl Where {
    pub(super) fn and(&mut self, cond: &str, args: impl IntoIterator<Item = rusqlite::types::Value>) {
        self.args.extend(args);
        self.sql.push_str(" AND ");
        self.sql.push_str(cond);
    }
}

pub(super) fn text(s: &str) -> rusqlite::types::Value {
    rusqlite::types::Value::Text(s.to_string())
}

pub(super) fn int(i: i64) -> rusqlite::types::Value {
    rusqlite::types::Value::Integer(i)
}

/// The exclusive upper bound of a prefix range.
pub(super) fn prefix_end(p: &str) -> String {
    let mut b = p.as_bytes().to_vec();
    if let Some(last) = b.last_mut() {
        *last += 1;
    }
    String::from_utf8_lossy(&b).into_owned()
}

pub(super) fn filter_sql(f: &Filters, view: View) -> Where {
    filter_sql_with(f, view, true)
}

/// The whole years `f` covers when it filters on nothing but a region and
/// registration dates from 1 January to 31 December: what the facet counts answer.
pub(super) fn facet_years(f: &Filters) -> Option<(i64, i64)> {
    let only_region_and_dates = Filters { region: None, since: None, until: None, ..f.clone() } == Filters::default();
    if !only_region_and_dates {
        return None;
    }
    let from = match f.since {
        None => 0,
        Some(d) if d.month == 1 && d.day == 1 => i64::from(d.year),
        Some(_) => return None,
    };
    let to = match f.until {
        None => 9999,
        Some(d) if d.month == 12 && d.day == 31 => i64::from(d.year),
        Some(_) => return None,
    };
    Some((from, to))
}

/// The conditions of `f`; the public view's checks read the store's state (`r`)
/// when `store` (listings), the catalogue's own otherwise (statistics, no join).
pub(super) fn filter_sql_with(f: &Filters, view: View, store: bool) -> Where {
    let mut w = Where::default();
    if let View::Public { .. } = view {
        // The catalogue's own state first (no store lookup for what it already
        // knows is not public); listings then check the store's. It picks no
        // index (`+`): nearly every record is public, so the order and the other
        // filters choose theirs.
        w.and("+d.state = 1", []);
    }
    if let (View::Public { today }, true) = (view, store) {
        // The store's own state decides, not the index: never more public than now.
        w.and("r.secret = '公开' AND r.withdrawn = 0 AND (r.embargo_until IS NULL OR r.embargo_until < ?)", [text(&today.to_string())]);
    }
    if let Some(p) = f.region.as_deref().filter(|p| !p.is_empty()) {
        w.and("d.region >= ? AND d.region < ?", [text(p), text(&prefix_end(p))]);
    }
    for (col, v) in
        [("d.kind", &f.kind), ("d.stage", &f.stage), ("d.level", &f.level), ("d.transfer", &f.transfer), ("d.origin", &f.origin)]
    {
        if let Some(v) = v {
            w.and(&format!("{col} = ?"), [text(v)]);
        }
    }
    for (col, v) in [("d.discipline", &f.discipline), ("d.industry", &f.industry)] {
        if let Some(p) = v.as_deref().filter(|p| !p.is_empty()) {
            w.and(&format!("{col} >= ? AND {col} < ?"), [text(p), text(&prefix_end(p))]);
        }
    }
    let ip_col = if matches!(view, View::Public { .. }) { "d.ip_public" } else { "d.ip_all" };
    match f.has_ip {
        Some(true) => w.and(&format!("{ip_col} != ''"), []),
        Some(false) => w.and(&format!("{ip_col} = ''"), []),
        None => {}
    }
    if let Some(t) = &f.ip_type {
        w.and(&format!("instr({ip_col}, ?) > 0"), [text(&format!(";{t};"))]);
    }
    if let Some(m) = f.trl_min {
        w.and("d.trl >= ?", [int(i64::from(m))]);
    }
    if let Some(m) = f.trl_max {
        w.and("d.trl <= ?", [int(i64::from(m))]);
    }
    if let Some(d) = f.since {
        w.and("d.reg_date >= ?", [text(&d.to_string())]);
    }
    if let Some(d) = f.until {
        w.and("d.reg_date <= ?", [text(&d.to_string())]);
    }
    if let Some(b) = f.fiscal_funded {
        w.and("d.fiscal_funded = ?", [int(i64::from(b))]);
    }
    if let Some(r) = &f.reg_no {
        w.and("d.reg_no = ?", [text(&r.trim().to_ascii_uppercase())]);
    }
    if let Some((slug, version)) = &f.package {
        w.and("d.reg_no IN (SELECT reg_no FROM st.package_members WHERE slug = ? AND version = ?)", [text(slug), int(*version)]);
    }
    w
}

/// The columns a hit is read from.
pub(super) const HIT_COLS: &str = "d.id, d.reg_date, d.region, r.origin, r.version, r.withdrawn, r.updated_at, b.body, l.hops";
/// The catalogue drives (CROSS JOIN): the planner may never start from the store's
/// records and look each up in the catalogue.
pub(super) const HIT_JOIN: &str =
    "CROSS JOIN st.records r ON r.reg_no = d.reg_no CROSS JOIN st.changes b ON b.seq = r.body_seq CROSS JOIN st.changes l ON l.seq = r.seq";

pub(super) struct Row {
    id: i64,
    /// The relevance tier the row was found in (0: title match).
    tier: u8,
    reg_date: String,
    region: String,
    pub(super) hit: Hit,
}

/// A hit from a row of `HIT_COLS`; highlighted for `q` unless `plain` (an export,
/// which shows no HTML).
pub(super) fn read_row_as(r: &rusqlite::Row<'_>, q: Option<&str>, plain: bool) -> Result<Row> {
    let body: String = r.get(7)?;
    let record = Record::from_json(body.as_bytes()).context("corrupt record body in the store")?;
    let hops: String = r.get(8)?;
    let q = q.unwrap_or("");
    let html = |text: &str, max: usize| if plain { String::new() } else { search::highlight(text, q, max) };
    Ok(Row {
        id: r.get(0)?,
        tier: 0,
        reg_date: r.get(1)?,
        region: r.get(2)?,
        hit: Hit {
            title_html: html(&record.title, 200),
            snippet_html: html(&record.r#abstract, 120),
            matched_html: if plain { String::new() } else { matched_elsewhere(&record, q) },
            stored: StoredRecord {
                record,
                origin: r.get(3)?,
                version: r.get(4)?,
                withdrawn: r.get::<_, i64>(5)? != 0,
                updated_at: r.get(6)?,
                hops: serde_json::from_str(&hops).context("corrupt hop list in the store")?,
            },
        },
    })
}

/// The public fields other than title and abstract where the query's terms that the
/// title and abstract do not hold were found, marked: `关键词：<mark>水稻</mark>…`.
pub(super) fn matched_elsewhere(r: &Record, q: &str) -> String {
    let has = |text: &str, t: &str| search::highlight(text, t, usize::MAX).contains("<mark>");
    let missing: Vec<&str> = search::terms(q).filter(|t| !has(&r.title, t) && !has(&r.r#abstract, t)).collect();
    if missing.is_empty() {
        return String::new();
    }
    let q = missing.join(" ");
    let mut units = vec![r.first_unit.clone()];
    units.extend(r.units.iter().cloned());
    let mut parts = Vec::new();
    for (label, text) in
        [("关键词", r.keywords.join("；")), ("完成单位", units.join("；")), ("完成人", r.persons.join("；")), ("登记号", r.reg_no.clone())]
    {
        let h = search::highlight(&text, &q, 80);
        if h.contains("<mark>") {
            parts.push(format!("{label}：{h}"));
        }
    }
    parts.join(" · ")
}

pub(super) fn read_row(r: &rusqlite::Row<'_>, q: Option<&str>) -> Result<Row> {
    read_row_as(r, q, false)
}

impl Catalogue {
    /// Opens the catalogue of the store in `data_dir` for reading.
    pub fn open(data_dir: &Path) -> Result<Catalogue> {
        let path = catalogue_path(data_dir);
        if !path.exists() {
            bail!("no catalogue at {} (has the node run yet? `huijiao reindex` builds one)", path.display());
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("cannot open the catalogue {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        attach_store(&conn, data_dir)?;
        Ok(Catalogue { conn })
    }

    /// A handle that stops this connection's running query from another thread.
    pub fn interrupt_handle(&self) -> rusqlite::InterruptHandle {
        self.conn.get_interrupt_handle()
    }

    /// A page of records.
    pub fn list(&self, l: &Listing) -> Result<Page, ListingError> {
        let cursor = match &l.cursor {
            Some(c) => Some(Cursor::decode(c).ok_or(ListingError::BadCursor)?),
            None => None,
        };
        let expr = l.q.as_deref().and_then(search::match_expr);
        let w = filter_sql(&l.filters, l.view);
        let limit = l.limit.max(1);
        let mut rows: Vec<Row> = Vec::new();
        let mut next = None;
        match (&expr, l.sort) {
            (Some(e), Sort::Relevance) => {
                // Title matches first, then the others, each newest first.
                let tiers = [format!("{{title}} : ({e})"), format!("({e}) NOT {{title}} : ({e})")];
                let start = cursor.as_ref().map_or(0, |c| c.tier);
                for (tier, m) in tiers.iter().enumerate().skip(start as usize) {
                    let below = cursor.as_ref().filter(|c| c.tier as usize == tier).map_or(i64::MAX, |c| c.id);
                    let want = limit + 1 - rows.len();
                    let got = self.fts_page(m, &w, below, want, l.q.as_deref())?;
                    let full = got.len() == want;
                    rows.extend(got.into_iter().map(|r| Row { tier: tier as u8, ..r }));
                    if full {
                        break;
                    }
                }
                if rows.len() > limit {
                    rows.truncate(limit);
                    let last = rows.last().expect("a page");
                    next = Some(Cursor { tier: last.tier, key: String::new(), id: last.id }.encode());
                }
            }
            _ => {
                let (order, after) = match l.sort {
                    Sort::Region => ("d.region ASC, d.id ASC", "(d.region > ? OR (d.region = ? AND d.id > ?))"),
                    _ => ("d.reg_date DESC, d.id DESC", "(d.reg_date < ? OR (d.reg_date = ? AND d.id < ?))"),
                };
                let mut w2 = match (l.sort, l.filters.region.as_deref()) {
                    // Newest first within a province or prefecture: walking the date
                    // index and skipping other regions finds a page after a few
                    // hundred records; the region index would read (and sort) every
                    // record of the province first. A county's own index entries are
                    // already in date order.
                    (Sort::Date | Sort::Relevance, Some(p)) if !p.is_empty() => {
                        let mut w = filter_sql(&Filters { region: None, ..l.filters.clone() }, l.view);
                        if p.len() == 6 {
                            w.and("d.region = ?", [text(p)]);
                        } else {
                            w.and("+d.region >= ? AND +d.region < ?", [text(p), text(&prefix_end(p))]);
                        }
                        w
                    }
                    _ => Where { sql: w.sql.clone(), args: w.args.clone() },
                };
                if let Some(c) = &cursor {
                    w2.and(after, [text(&c.key), text(&c.key), int(c.id)]);
                }
                let fts = match &expr {
                    Some(e) => {
                        w2.and("d.id IN (SELECT rowid FROM fts WHERE fts MATCH ?)", [text(e)]);
                        ""
                    }
                    None => "",
                };
                let sql =
                    format!("SELECT {HIT_COLS} FROM docs d {HIT_JOIN}{fts} WHERE 1 = 1{} ORDER BY {order} LIMIT {}", w2.sql, limit + 1);
                let mut st = self.conn.prepare(&sql)?;
                let mut res = st.query(params_from_iter(w2.args.iter()))?;
                while let Some(r) = res.next()? {
                    rows.push(read_row(r, l.q.as_deref())?);
                }
                if rows.len() > limit {
                    rows.truncate(limit);
                    let last = rows.last().expect("a page");
                    let key = if l.sort == Sort::Region { last.region.clone() } else { last.reg_date.clone() };
                    next = Some(Cursor { tier: 0, key, id: last.id }.encode());
                }
            }
        }
        // Counted on the catalogue's own copy of each record's state (like statistics):
        // no lookup in the store for each of up to COUNT_CAP matches.
        let mut total = match (&expr, facet_years(&l.filters)) {
            // Only a region and whole years: the counters have the exact number.
            (None, Some(years)) => {
                let states = if matches!(l.view, View::Public { .. }) { "(1)" } else { "(1, 2, 3)" };
                let n = self.facet_stats(GroupBy::Kind, l.filters.region.as_deref(), years, states)?.iter().map(|(_, n)| n).sum();
                Total { n, capped: false, estimated: false }
            }
            _ => self.count(expr.as_deref(), &filter_sql_with(&l.filters, l.view, false))?,
        };
        // At least what this page shows (and one more).
        let shown = rows.len() as u64 + u64::from(next.is_some());
        if total.n < shown {
            total = Total { n: shown, capped: total.capped || next.is_some(), estimated: false };
        }
        Ok(Page {
            hits: rows.into_iter().map(|r| r.hit).collect(),
            total: total.n,
            total_capped: total.capped,
            total_estimated: total.estimated,
            next_cursor: next,
        })
    }

    /// Up to `want` matches of `m` below doc id `below`, newest first.
    fn fts_page(&self, m: &str, w: &Where, below: i64, want: usize, q: Option<&str>) -> Result<Vec<Row>> {
        let mut args = vec![text(m), int(below)];
        args.extend(w.args.iter().cloned());
        let sql = format!(
            "SELECT {HIT_COLS} FROM fts CROSS JOIN docs d ON d.id = fts.rowid {HIT_JOIN} WHERE fts MATCH ? AND fts.rowid < ?{} ORDER BY fts.rowid DESC LIMIT {want}",
            w.sql
        );
        let mut st = self.conn.prepare(&sql)?;
        let mut res = st.query(params_from_iter(args.iter()))?;
        let mut out = Vec::new();
        while let Some(r) = res.next()? {
            out.push(read_row(r, q)?);
        }
        Ok(out)
    }

    /// How many records match, all of them counted (`huijiao query --count`).
    pub fn count_all(&self, q: Option<&str>, f: &Filters, view: View) -> Result<u64> {
        let expr = q.and_then(search::match_expr);
        Ok(self.count_upto(expr.as_deref(), &filter_sql_with(f, view, false), i64::MAX as u64 - 1, None)?.n)
    }

    /// How many records match, counted up to [`COUNT_CAP`] and for at most
    /// [`COUNT_BUDGET`]: a filter no index serves (two rare values together) would
    /// otherwise read every record. Past either, the count is a lower bound.
    fn count(&self, expr: Option<&str>, w: &Where) -> Result<Total> {
        self.count_upto(expr, w, COUNT_CAP, Some(COUNT_STEPS))
    }

    fn count_upto(&self, expr: Option<&str>, w: &Where, cap: u64, steps: Option<u64>) -> Result<Total> {
        // A budget of work, not of time: the same query over the same records always
        // gets the same answer, however busy the node is.
        // Past COUNT_SAFETY of time (a cold cache over millions of records) it stops
        // as well, with the same estimate.
        if let Some(steps) = steps {
            let calls = std::sync::atomic::AtomicU64::new(0);
            let deadline = std::time::Instant::now() + COUNT_SAFETY;
            self.conn.progress_handler(
                COUNT_STEP as i32,
                Some(move || {
                    calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1 > steps / COUNT_STEP
                        || std::time::Instant::now() > deadline
                }),
            );
        }
        let counted = self.count_rows(expr, w, cap);
        if steps.is_some() {
            self.conn.progress_handler(0, None::<fn() -> bool>);
        }
        let (n, last_id, stopped) = counted?;
        if n > cap {
            return Ok(Total { n: cap, capped: true, estimated: false });
        }
        if !stopped {
            return Ok(Total { n, capped: false, estimated: false });
        }
        // Stopped by the budget: a search walked its matches newest first, from the
        // highest id down to `last_id`; the share of the id range it covered gives an
        // estimate of the whole (once enough were seen to say anything).
        match (expr, last_id) {
            (Some(_), Some(last)) if n >= 100 => {
                let (lo, hi): (i64, i64) = self
                    .conn
                    .query_row("SELECT coalesce(min(id), 0), coalesce(max(id), 0) FROM docs", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
                let covered = (hi - last + 1).max(1) as f64;
                let estimate = (n as f64 * (hi - lo + 1).max(1) as f64 / covered).round() as u64;
                if estimate > cap {
                    Ok(Total { n: cap, capped: true, estimated: false })
                } else {
                    Ok(Total { n: estimate.max(n), capped: false, estimated: true })
                }
            }
            _ => Ok(Total { n, capped: true, estimated: false }),
        }
    }

    /// Steps through up to `cap + 1` matches (a search's newest first); returns how many,
    /// the last doc id seen, and `true` when the budget stopped it.
    fn count_rows(&self, expr: Option<&str>, w: &Where, cap: u64) -> Result<(u64, Option<i64>, bool)> {
        let (sql, args) = match expr {
            Some(e) => {
                let cond = &w.sql;
                let mut args = vec![text(e)];
                args.extend(w.args.iter().cloned());
                (
                    format!(
                        "SELECT d.id FROM fts CROSS JOIN docs d ON d.id = fts.rowid WHERE fts MATCH ?{cond} ORDER BY fts.rowid DESC LIMIT {}",
                        cap.saturating_add(1)
                    ),
                    args,
                )
            }
            None => (format!("SELECT d.id FROM docs d WHERE 1 = 1{} LIMIT {}", w.sql, cap.saturating_add(1)), w.args.clone()),
        };
        let mut st = self.conn.prepare_cached(&sql)?;
        let mut rows = st.query(params_from_iter(args.iter()))?;
        let mut n = 0u64;
        let mut last = None;
        loop {
            match rows.next() {
                Ok(Some(r)) => {
                    n += 1;
                    last = Some(r.get::<_, i64>(0)?);
                }
                Ok(None) => return Ok((n, last, false)),
                Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::OperationInterrupted => {
                    return Ok((n, last, true))
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// One record by registration number, if the view may see it.
    pub fn get(&self, reg_no: &str, view: View) -> Result<Option<Hit>> {
        let f = Filters { reg_no: Some(reg_no.to_string()), ..Filters::default() };
        let w = filter_sql(&f, view);
        let sql = format!("SELECT {HIT_COLS} FROM docs d {HIT_JOIN} WHERE 1 = 1{}", w.sql);
        let mut st = self.conn.prepare(&sql)?;
        let mut res = st.query(params_from_iter(w.args.iter()))?;
        match res.next()? {
            Some(r) => Ok(Some(read_row(r, None)?.hit)),
            None => Ok(None),
        }
    }
}
