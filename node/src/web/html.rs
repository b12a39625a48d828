//! Writing HTML by hand, safely: every text goes through [`esc`], every URL
//! parameter through [`enc`].

use std::fmt::Write;

/// HTML-escapes text for element content and quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    crate::search::escape_html(s, &mut out);
    out
}

/// Text that came from a record (any node, any channel), as HTML: escaped, its
/// bidirectional controls dropped, and isolated in `<bdi>` so that right-to-left text
/// cannot reorder what stands around it.
pub fn rec_text(s: &str) -> String {
    format!("<bdi>{}</bdi>", esc(s))
}

/// Already escaped HTML of a record's text (a highlight), isolated like [`rec_text`].
pub fn rec_html(html: &str) -> String {
    format!("<bdi>{html}</bdi>")
}

/// Percent-encodes a URL query value or path segment.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// `path?k=v&…` from pairs, leaving out empty values.
pub fn url<K: AsRef<str>, V: AsRef<str>>(path: &str, pairs: &[(K, V)]) -> String {
    let q: Vec<String> =
        pairs.iter().filter(|(_, v)| !v.as_ref().is_empty()).map(|(k, v)| format!("{}={}", enc(k.as_ref()), enc(v.as_ref()))).collect();
    if q.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", q.join("&"))
    }
}

/// A whole page: the shared head, navigation and footer around `body`.
pub fn page(title: &str, nav: &str, body: &str) -> String {
    let link = |href: &str, label: &str, key: &str| {
        let current = if key == nav { " aria-current=\"page\"" } else { "" };
        format!("<a href=\"{href}\"{current}>{label}</a>")
    };
    format!(
        "<!doctype html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{} · 科技成果登记目录</title><link rel=\"icon\" href=\"/assets/icon.svg\" type=\"image/svg+xml\">\
<link rel=\"stylesheet\" href=\"/assets/style.css\"></head>\
<body><header><a class=\"brand\" href=\"/\">科技成果登记目录</a><nav>{}{}{}{}</nav></header><main>{body}</main>\
<footer>汇交 huijiao · 只显示公开的成果与字段</footer><script src=\"/assets/app.js\"></script></body></html>\n",
        esc(title),
        link("/", "检索", "search"),
        link("/packages", "成果包", "packages"),
        link("/stats", "统计", "stats"),
        link("/admin", "管理", "admin"),
    )
}

/// `<option>`s of `(value, label)`, `selected` chosen; the first is "any".
pub fn options(any: &str, items: &[(String, String)], selected: &str) -> String {
    let mut out = format!("<option value=\"\">{}</option>", esc(any));
    for (v, label) in items {
        let sel = if v == selected { " selected" } else { "" };
        let _ = write!(out, "<option value=\"{}\"{sel}>{}</option>", esc(v), esc(label));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_urls() {
        assert_eq!(esc("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert_eq!(url("/", &[("q", "水稻 5G"), ("region", ""), ("x", "a&b")]), "/?q=%E6%B0%B4%E7%A8%BB%205G&x=a%26b");
    }
}
