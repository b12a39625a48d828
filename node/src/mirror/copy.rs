//! PostgreSQL's binary COPY format, for the mirror's rows: the stream's header and
//! trailer, a tuple's field count, and each field as its type's binary form (`text`,
//! `bigint`, `integer`, `boolean`, `date`, `timestamptz`, `numeric`, `jsonb`,
//! `text[]`), each preceded by its length (-1 for NULL). The server reads these
//! without parsing text: no escapes, no array or date literals, no decimal parsing
//! (jsonb still parses its JSON).

use huijiao_protocol::Date;

/// The stream's start: the signature, no flags, no header extension.
const HEADER: &[u8; 19] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// The stream's end: a field count of -1.
const TRAILER: [u8; 2] = (-1i16).to_be_bytes();

/// The OID of `text`, the element type of the `text[]` columns.
const TEXT_OID: i32 = 25;

/// Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch for dates and times.
const PG_EPOCH_DAYS: i64 = 10_957;

/// One COPY stream of `capacity` bytes or so: the header, the tuples `fill` writes,
/// the trailer.
pub fn stream(capacity: usize, fill: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut buf = Vec::with_capacity(HEADER.len() + capacity + TRAILER.len());
    buf.extend_from_slice(HEADER);
    fill(&mut buf);
    buf.extend_from_slice(&TRAILER);
    buf
}

/// Starts a tuple of `fields` fields.
pub fn tuple(buf: &mut Vec<u8>, fields: i16) {
    buf.extend_from_slice(&fields.to_be_bytes());
}

pub fn null(buf: &mut Vec<u8>) {
    buf.extend_from_slice(&(-1i32).to_be_bytes());
}

/// A field of `bytes` as they are (the binary form of `text` is its UTF-8).
fn raw(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&len(bytes.len()).to_be_bytes());
    buf.extend_from_slice(bytes);
}

/// A field `write` writes in place, its length filled in afterwards.
fn sized(buf: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    let at = buf.len();
    buf.extend_from_slice(&[0; 4]);
    write(buf);
    let n = len(buf.len() - at - 4);
    buf[at..at + 4].copy_from_slice(&n.to_be_bytes());
}

/// A field's length: a value of 2 GiB or more cannot be a field, and cannot reach
/// here (a record is bounded far below that).
fn len(n: usize) -> i32 {
    i32::try_from(n).expect("a COPY field under 2 GiB")
}

pub fn text(buf: &mut Vec<u8>, s: &str) {
    raw(buf, s.as_bytes());
}

pub fn int8(buf: &mut Vec<u8>, v: i64) {
    raw(buf, &v.to_be_bytes());
}

pub fn int4(buf: &mut Vec<u8>, v: i32) {
    raw(buf, &v.to_be_bytes());
}

pub fn boolean(buf: &mut Vec<u8>, v: bool) {
    raw(buf, &[u8::from(v)]);
}

/// A `date`: days since 2000-01-01.
pub fn date(buf: &mut Vec<u8>, d: Date) {
    int4(buf, (d.to_days() - PG_EPOCH_DAYS) as i32);
}

/// A `timestamptz` from Unix milliseconds: microseconds since 2000-01-01 UTC.
pub fn timestamptz_ms(buf: &mut Vec<u8>, ms: i64) {
    int8(buf, (ms - PG_EPOCH_DAYS * 86_400_000) * 1000);
}

/// A `jsonb` field: the format's version byte (1), then `v` as JSON text.
pub fn jsonb(buf: &mut Vec<u8>, v: &serde_json::Value) {
    sized(buf, |buf| {
        buf.push(1);
        // A JSON value (string keys only) written to memory cannot fail.
        serde_json::to_writer(&mut *buf, v).expect("a JSON value serializes");
    });
}

/// A one-dimensional `text[]` without NULLs (an empty list is the empty array).
pub fn text_array(buf: &mut Vec<u8>, items: &[&str]) {
    sized(buf, |buf| {
        let n = items.len();
        buf.extend_from_slice(&i32::from(n > 0).to_be_bytes());
        buf.extend_from_slice(&0i32.to_be_bytes());
        buf.extend_from_slice(&TEXT_OID.to_be_bytes());
        if n > 0 {
            buf.extend_from_slice(&len(n).to_be_bytes());
            buf.extend_from_slice(&1i32.to_be_bytes());
            for item in items {
                text(buf, item);
            }
        }
    });
}

/// A `numeric` of `shown`, a JSON number as the record's JSON writes it (`-12.50`,
/// `1572.0`, `1.5e-7`), with the value and the scale PostgreSQL's own parser would
/// give it: base-10,000 digits, the weight of the first, the sign and the number of
/// decimal places. Not a decimal number → NULL (a record's JSON cannot hold one).
pub fn numeric(buf: &mut Vec<u8>, shown: &str) {
    let (negative, unsigned) = match shown.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, shown),
    };
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => match e.strip_prefix('+').unwrap_or(e).parse::<i32>() {
            Ok(e) if e.abs() <= 100_000 => (m, e),
            _ => return null(buf),
        },
        None => (unsigned, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return null(buf);
    }
    let dscale = (frac.len() as i32 - exponent).max(0);
    // The digits with the decimal point after the first `point` of them, padded with
    // zeros on the left so that the point falls between groups of four, and on the
    // right to whole groups.
    let point = int.len() as i32 + exponent;
    let lead = (4 - point.rem_euclid(4)) % 4;
    let mut digits: Vec<u8> = std::iter::repeat_n(b'0', lead as usize).chain(int.bytes()).chain(frac.bytes()).collect();
    digits.resize(digits.len().div_ceil(4) * 4, b'0');
    let mut groups: Vec<i16> = digits.chunks(4).map(|c| c.iter().fold(0i16, |a, d| a * 10 + i16::from(d - b'0'))).collect();
    let mut weight = (point + lead) / 4 - 1;
    let leading = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..leading);
    weight -= leading as i32;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let sign: u16 = if negative && !groups.is_empty() { 0x4000 } else { 0 };
    sized(buf, |buf| {
        buf.extend_from_slice(&(groups.len() as i16).to_be_bytes());
        buf.extend_from_slice(&(weight as i16).to_be_bytes());
        buf.extend_from_slice(&sign.to_be_bytes());
        buf.extend_from_slice(&(dscale as i16).to_be_bytes());
        for g in groups {
            buf.extend_from_slice(&g.to_be_bytes());
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A numeric field's (ndigits, weight, sign, dscale, digits).
    fn numeric_of(v: &str) -> (i16, i16, u16, i16, Vec<i16>) {
        let mut b = Vec::new();
        numeric(&mut b, v);
        let n = i32::from_be_bytes(b[0..4].try_into().unwrap()) as usize;
        assert_eq!(n, b.len() - 4);
        let h = |i: usize| i16::from_be_bytes(b[4 + 2 * i..6 + 2 * i].try_into().unwrap());
        let nd = h(0);
        (nd, h(1), h(2) as u16, h(3), (0..nd as usize).map(|i| h(4 + i)).collect())
    }

    #[test]
    fn numerics_are_base_ten_thousand_with_weight_and_scale() {
        assert_eq!(numeric_of("42214.83"), (3, 1, 0, 2, vec![4, 2214, 8300]));
        assert_eq!(numeric_of("1572.0"), (1, 0, 0, 1, vec![1572]));
        assert_eq!(numeric_of("-5.5"), (2, 0, 0x4000, 1, vec![5, 5000]));
        assert_eq!(numeric_of("0"), (0, 0, 0, 0, vec![]));
        assert_eq!(numeric_of("-0.0"), (0, 0, 0, 1, vec![]));
        assert_eq!(numeric_of("0.00012"), (2, -1, 0, 5, vec![1, 2000]));
        assert_eq!(numeric_of("10000"), (1, 1, 0, 0, vec![1]));
        assert_eq!(numeric_of("123456789"), (3, 2, 0, 0, vec![1, 2345, 6789]));
        assert_eq!(numeric_of("1.5e-7"), (1, -2, 0, 8, vec![15]));
        assert_eq!(numeric_of("1e16"), (1, 4, 0, 0, vec![1]));
        assert_eq!(numeric_of("2.5E+3"), (1, 0, 0, 0, vec![2500]));
        for bad in ["", "-", ".", "1e", "x1", "1.2.3", "1e999999"] {
            let mut b = Vec::new();
            numeric(&mut b, bad);
            assert_eq!(b, (-1i32).to_be_bytes(), "{bad:?}");
        }
    }

    #[test]
    fn arrays_dates_and_times_use_the_servers_forms() {
        let mut b = Vec::new();
        text_array(&mut b, &["甲", "b"]);
        let want: Vec<u8> = [32i32, 1, 0, 25, 2, 1, 3]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .chain("甲".bytes())
            .chain(1i32.to_be_bytes())
            .chain(*b"b")
            .collect();
        assert_eq!(b, want);
        b.clear();
        text_array(&mut b, &[]);
        assert_eq!(b, [12i32, 0, 0, 25].iter().flat_map(|v| v.to_be_bytes()).collect::<Vec<u8>>());
        b.clear();
        date(&mut b, Date::new(2000, 1, 2).unwrap());
        assert_eq!(b, [4i32, 1].iter().flat_map(|v| v.to_be_bytes()).collect::<Vec<u8>>());
        b.clear();
        timestamptz_ms(&mut b, 946_684_800_001);
        assert_eq!(b[4..], 1000i64.to_be_bytes());
        b.clear();
        jsonb(&mut b, &serde_json::json!({}));
        assert_eq!(b, [0, 0, 0, 3, 1, b'{', b'}']);
    }
}
