//! The streamed export of every matching record.

use super::*;

impl Catalogue {
    /// Calls `each` for every matching record in the order this node indexed them
    /// (the order they reached it: the store is then read nearly in its own order,
    /// several times faster than in registration-number order over ten million), without
    /// holding them (an export of ten million rows streams). Withdrawn records are
    /// left out: an export is a submission another node can take in.
    /// `each`'s own error (a write to the reader, say) stops the export and is returned.
    pub fn export<E: From<StoreError>>(
        &self,
        q: Option<&str>,
        f: &Filters,
        view: View,
        mut each: impl FnMut(Hit) -> Result<(), E>,
    ) -> Result<u64, E> {
        let mut w = filter_sql(f, view);
        w.and("r.withdrawn = 0", []);
        if let Some(e) = q.and_then(search::match_expr) {
            w.and("d.id IN (SELECT rowid FROM fts WHERE fts MATCH ?)", [text(&e)]);
        }
        let sql = format!("SELECT {HIT_COLS} FROM docs d {HIT_JOIN} WHERE 1 = 1{} ORDER BY d.id", w.sql);
        let mut st = self.conn.prepare(&sql).map_err(StoreError::from)?;
        let mut res = st.query(params_from_iter(w.args.iter())).map_err(StoreError::from)?;
        let mut n = 0;
        while let Some(r) = res.next().map_err(StoreError::from)? {
            each(read_row_as(r, None, true)?.hit)?;
            n += 1;
        }
        Ok(n)
    }
}
