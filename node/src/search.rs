//! Chinese full-text search without a dictionary: runs of Chinese characters are
//! indexed as overlapping bigrams, runs of letters and digits as lower-case words.
//!
//! A query is tokenized the same way and each of its terms becomes a phrase of
//! consecutive tokens, so `水稻` (one bigram) and `水稻病虫害` (four bigrams in a row)
//! match exactly where the text holds them, `5G基站` matches `5g` followed by `基站`,
//! and a reg_no is one word. SQLite FTS5 holds the tokens (BENCHMARKS.md compares it
//! with the alternatives). A single Chinese character is searched as the prefix of a
//! bigram, so it is found everywhere but at the very end of a run of characters.

/// Whether `c` is written in runs without spaces (Chinese, Japanese kana).
fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{3040}'..='\u{30FF}' | '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}' | '\u{20000}'..='\u{2FA1F}')
}

/// One run of the text: Chinese characters, or a word of letters and digits.
enum Run {
    Cjk(Vec<char>),
    Word(String),
}

fn runs(text: &str) -> Vec<Run> {
    let mut out = Vec::new();
    let mut cjk: Vec<char> = Vec::new();
    let mut word = String::new();
    let flush = |cjk: &mut Vec<char>, word: &mut String, out: &mut Vec<Run>| {
        if !cjk.is_empty() {
            out.push(Run::Cjk(std::mem::take(cjk)));
        }
        if !word.is_empty() {
            out.push(Run::Word(std::mem::take(word)));
        }
    };
    for c in text.chars() {
        if is_cjk(c) {
            if !word.is_empty() {
                flush(&mut cjk, &mut word, &mut out);
            }
            cjk.push(c);
        } else if c.is_alphanumeric() {
            if !cjk.is_empty() {
                flush(&mut cjk, &mut word, &mut out);
            }
            word.extend(c.to_lowercase());
        } else {
            flush(&mut cjk, &mut word, &mut out);
        }
    }
    flush(&mut cjk, &mut word, &mut out);
    out
}

/// The tokens of a text, in order.
pub fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for run in runs(text) {
        match run {
            Run::Word(w) => out.push(w),
            Run::Cjk(cs) if cs.len() == 1 => out.push(cs[0].to_string()),
            Run::Cjk(cs) => out.extend(cs.windows(2).map(|w| w.iter().collect::<String>())),
        }
    }
    out
}

/// The text as the index stores it: its tokens, space separated.
pub fn index_text(text: &str) -> String {
    tokens(text).join(" ")
}

/// The terms of a query: what lies between spaces or any punctuation (`锂电池，回收`,
/// `锂电池、回收`, `锂电池;回收` and `锂电池-回收` are the two terms of `锂电池 回收`).
/// A term is a run of letters, digits and Chinese characters (`5G基站` is one).
pub fn terms(q: &str) -> impl Iterator<Item = &str> {
    q.split(|c: char| !c.is_alphanumeric()).filter(|t| !t.is_empty())
}

/// A query as an FTS5 expression: every term (see [`terms`]) must match, each as
/// a phrase of its tokens; a lone Chinese character matches as a prefix. None when the
/// query holds nothing searchable.
pub fn match_expr(q: &str) -> Option<String> {
    let mut terms = Vec::new();
    for term in self::terms(q) {
        let runs = runs(term);
        let single = matches!(runs.as_slice(), [Run::Cjk(cs)] if cs.len() == 1);
        let toks = tokens(term);
        if toks.is_empty() {
            continue;
        }
        // Tokens hold only letters, digits and Chinese characters: no quote to escape.
        let phrase = format!("\"{}\"", toks.join(" "));
        terms.push(if single { format!("{phrase} *") } else { phrase });
    }
    (!terms.is_empty()).then(|| terms.join(" AND "))
}

/// The characters of a query a snippet highlights: each term's letters and
/// characters, lower-cased.
fn needles(q: &str) -> Vec<Vec<char>> {
    terms(q).map(|t| t.chars().flat_map(char::to_lowercase).collect::<Vec<char>>()).filter(|n| !n.is_empty()).collect()
}

/// Whether `c` is a bidirectional control character (embeddings, overrides,
/// isolates, the Arabic letter mark): in a record's text it could show `exe.txt` as
/// `txt.exe`. Pages never carry them ([`escape_html`] drops them).
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{061C}')
}

/// HTML-escapes `s` onto `out` (element content and quoted attributes); bidirectional
/// control characters are dropped.
pub(crate) fn escape_html(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            c if is_bidi_control(c) => {}
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// `text` with every place a query term occurs wrapped in `<mark>…</mark>`, HTML
/// escaped, cut to about `width` characters around the first hit (`…` marks a cut).
/// Matching ignores case and the spaces and punctuation between a term's characters.
pub fn highlight(text: &str, q: &str, width: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    // The text's searchable characters with their positions.
    let folded: Vec<(usize, char)> =
        chars.iter().enumerate().filter(|(_, c)| c.is_alphanumeric()).map(|(i, c)| (i, c.to_lowercase().next().unwrap_or(*c))).collect();
    let mut marks: Vec<(usize, usize)> = Vec::new();
    for n in needles(q) {
        let mut i = 0;
        while i + n.len() <= folded.len() {
            if folded[i..i + n.len()].iter().map(|(_, c)| *c).eq(n.iter().copied()) {
                marks.push((folded[i].0, folded[i + n.len() - 1].0 + 1));
                i += n.len();
            } else {
                i += 1;
            }
        }
    }
    marks.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (a, b) in marks {
        match merged.last_mut() {
            Some((_, e)) if a <= *e => *e = (*e).max(b),
            _ => merged.push((a, b)),
        }
    }
    let (from, to) = if chars.len() <= width {
        (0, chars.len())
    } else {
        let center = merged.first().map_or(0, |(a, _)| *a);
        let from = center.saturating_sub(width / 4);
        (from, (from + width).min(chars.len()))
    };
    let mut out = String::new();
    if from > 0 {
        out.push('…');
    }
    let mut i = from;
    for (a, b) in merged.iter().copied().filter(|(a, b)| *b > from && *a < to) {
        let (a, b) = (a.max(from), b.min(to));
        escape_html(&chars[i..a].iter().collect::<String>(), &mut out);
        out.push_str("<mark>");
        escape_html(&chars[a..b].iter().collect::<String>(), &mut out);
        out.push_str("</mark>");
        i = b;
    }
    escape_html(&chars[i.min(to)..to].iter().collect::<String>(), &mut out);
    if to < chars.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_runs_become_bigrams_and_words_stay_whole() {
        assert_eq!(tokens("水稻病虫害"), vec!["水稻", "稻病", "病虫", "虫害"]);
        assert_eq!(tokens("5G基站节能"), vec!["5g", "基站", "站节", "节能"]);
        assert_eq!(tokens("LiDAR 点云，识别"), vec!["lidar", "点云", "识别"]);
        assert_eq!(tokens("4201022024Y0001"), vec!["4201022024y0001"]);
        assert_eq!(tokens("稻"), vec!["稻"]);
    }

    #[test]
    fn queries_are_phrases_of_their_tokens() {
        assert_eq!(match_expr("水稻").as_deref(), Some("\"水稻\""));
        assert_eq!(match_expr("水稻 识别").as_deref(), Some("\"水稻\" AND \"识别\""));
        assert_eq!(match_expr("5G基站").as_deref(), Some("\"5g 基站\""));
        assert_eq!(match_expr("稻").as_deref(), Some("\"稻\" *"));
        assert_eq!(match_expr("\"OR\" NEAR( *").as_deref(), Some("\"or\" AND \"near\""), "no FTS5 syntax gets through");
        assert_eq!(match_expr("，。！"), None);
    }

    #[test]
    fn punctuation_separates_terms_as_a_space_does() {
        let spaced = match_expr("锂电池 回收");
        assert_eq!(spaced.as_deref(), Some("\"锂电 电池\" AND \"回收\""));
        for q in ["锂电池，回收", "锂电池、回收", "锂电池,回收", "锂电池;回收", "锂电池-回收", "锂电池／回收", "“锂电池”（回收）"]
        {
            assert_eq!(match_expr(q), spaced, "{q}");
        }
        assert_eq!(match_expr("水稻、病虫害").as_deref(), Some("\"水稻\" AND \"病虫 虫害\""));
        assert_eq!(terms("5G基站，LiDAR").collect::<Vec<_>>(), vec!["5G基站", "LiDAR"]);
        assert!(highlight("锂电池的回收", "锂电池、回收", 100).contains("<mark>回收</mark>"));
    }

    #[test]
    fn bidi_controls_never_reach_html() {
        let mut out = String::new();
        escape_html("报告\u{202E}exe.txt\u{2066}x\u{2069}", &mut out);
        assert_eq!(out, "报告exe.txtx");
        assert!(!highlight("水稻\u{202E}gpj.exe", "水稻", 100).contains('\u{202E}'));
    }

    #[test]
    fn snippets_mark_every_hit_and_escape_the_rest() {
        assert_eq!(highlight("研究<水稻>病虫害与水稻产量", "水稻", 100), "研究&lt;<mark>水稻</mark>&gt;病虫害与<mark>水稻</mark>产量");
        assert_eq!(highlight("基于LiDAR的识别", "lidar", 100), "基于<mark>LiDAR</mark>的识别");
        let long = format!("{}水稻{}", "甲".repeat(200), "乙".repeat(200));
        let s = highlight(&long, "水稻", 40);
        assert!(s.starts_with('…') && s.ends_with('…') && s.contains("<mark>水稻</mark>"), "{s}");
    }
}
