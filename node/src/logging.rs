//! Logging set-up: one line per event on stderr, in the form that suits where it goes.
//!
//! - `journal` (the default under systemd, which sets `JOURNAL_STREAM`): a syslog
//!   priority prefix journald understands (`<3>` error … `<7>` debug), no time (the
//!   journal stamps it), no colour;
//! - `text` (the default elsewhere): Beijing time `+08:00` like every other time the
//!   node shows, level, module, message; colour only on a terminal;
//! - `json` (`HUIJIAO_LOG_FORMAT=json`): one object per line, the same time.
//!
//! `HUIJIAO_LOG` filters (`info`, `warn`, `huijiao::inbox=debug,info`); a value that
//! does not parse is an error at start, not silence. SIGHUP can change the filter.

use std::fmt;
use std::sync::OnceLock;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::reload;

/// Beijing time, as `status` and the reports show it.
struct ChinaTime;

impl FormatTime for ChinaTime {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        w.write_str(&crate::clock::rfc3339_china(crate::clock::now_ms()))
    }
}

/// `<N>LEVEL module: message fields` for journald.
struct Journal;

impl<S, N> FormatEvent<S, N> for Journal
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let meta = event.metadata();
        let priority = match *meta.level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            Level::DEBUG | Level::TRACE => 7,
        };
        write!(w, "<{priority}>{} {}: ", meta.level(), meta.target())?;
        ctx.format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// The log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Journal,
    Json,
}

/// Reads `HUIJIAO_LOG_FORMAT` (default: journal under systemd, text otherwise).
pub fn format_from_env() -> anyhow::Result<Format> {
    match std::env::var("HUIJIAO_LOG_FORMAT").ok().as_deref() {
        None | Some("") => Ok(if std::env::var_os("JOURNAL_STREAM").is_some() { Format::Journal } else { Format::Text }),
        Some("text") => Ok(Format::Text),
        Some("journal") => Ok(Format::Journal),
        Some("json") => Ok(Format::Json),
        Some(other) => anyhow::bail!("HUIJIAO_LOG_FORMAT=`{other}` is not a log format (use text, journal or json)"),
    }
}

/// Parses a filter, with an error that says how to write one. Stricter than
/// `Targets` itself, which reads a misspelt level (`inf0`) as a module name and so
/// silences everything: every part must be a level or `module=level`.
pub fn parse_filter(spec: &str) -> anyhow::Result<Targets> {
    let bad = |why: String| {
        anyhow::anyhow!(
            "HUIJIAO_LOG=`{spec}` is not a log filter ({why}); use a level (error, warn, info, debug, trace, off) or module=level pairs such as huijiao::inbox=debug,info"
        )
    };
    let is_level = |l: &str| l.trim().parse::<tracing_subscriber::filter::LevelFilter>().is_ok();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.rsplit_once('=') {
            Some((target, level)) if !target.trim().is_empty() && is_level(level) => {}
            Some(_) => return Err(bad(format!("`{part}` is not module=level"))),
            None if is_level(part) => {}
            None => return Err(bad(format!("`{part}` is not a level"))),
        }
    }
    spec.parse::<Targets>().map_err(|e| bad(e.to_string()))
}

type Reloader = Box<dyn Fn(Targets) -> anyhow::Result<()> + Send + Sync>;

static RELOAD: OnceLock<Reloader> = OnceLock::new();

/// Installs the global subscriber from `HUIJIAO_LOG` and `HUIJIAO_LOG_FORMAT`.
pub fn init() -> anyhow::Result<()> {
    let spec = std::env::var("HUIJIAO_LOG").unwrap_or_else(|_| "info".into());
    let filter = parse_filter(&spec)?;
    let format = format_from_env()?;
    let (filter, handle) = reload::Layer::new(filter);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        Format::Text => {
            registry.with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi).with_timer(ChinaTime)).init()
        }
        Format::Journal => {
            registry.with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(false).event_format(Journal)).init()
        }
        Format::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr)
                    .with_ansi(false)
                    .with_timer(ChinaTime)
                    .flatten_event(true),
            )
            .init(),
    }
    let _ = RELOAD.set(Box::new(move |t| handle.reload(t).map_err(|e| anyhow::anyhow!("cannot change the log filter: {e}"))));
    Ok(())
}

/// Changes the filter of the running subscriber (SIGHUP with a new `log` setting).
pub fn set_filter(spec: &str) -> anyhow::Result<()> {
    let filter = parse_filter(spec)?;
    match RELOAD.get() {
        Some(r) => r(filter),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_filter_that_does_not_parse_is_an_error_naming_it() {
        assert!(super::parse_filter("huijiao::inbox=debug,info").is_ok());
        assert!(super::parse_filter("warn").is_ok());
        for bad in ["inf0", "huijiao::inbox=loud", "=debug"] {
            let e = super::parse_filter(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("HUIJIAO_LOG=`{bad}`")), "{e}");
        }
    }
}
