//! Logging for the runtime binary: text or runc's JSON lines
//! (`{"level","msg","time"}`, which containerd parses) to --log or stderr.

use std::fmt;
use std::fs::OpenOptions;
use std::path::Path;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::cli::LogFormat;

#[derive(Default)]
struct Fields {
    msg: String,
    extra: serde_json::Map<String, serde_json::Value>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.msg = format!("{value:?}");
        } else {
            self.extra.insert(field.name().to_string(), serde_json::Value::String(format!("{value:?}")));
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.msg = value.to_string();
        } else {
            self.extra.insert(field.name().to_string(), serde_json::Value::String(value.to_string()));
        }
    }
}

struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut f = Fields::default();
        event.record(&mut f);
        let mut obj = f.extra;
        obj.insert("level".into(), event.metadata().level().as_str().to_ascii_lowercase().into());
        obj.insert("msg".into(), f.msg.into());
        obj.insert("time".into(), crate::state::now_rfc3339().into());
        writeln!(w, "{}", serde_json::Value::Object(obj))
    }
}

/// Installs the subscriber. A log file that cannot be opened falls back to stderr.
pub fn init(log: Option<&Path>, format: LogFormat, debug: bool) {
    let level = if debug { Level::DEBUG } else { Level::INFO };
    let file = log.and_then(|p| OpenOptions::new().create(true).append(true).open(p).ok());
    let builder = tracing_subscriber::fmt().with_max_level(level).with_ansi(false);
    let _ = match (file, format) {
        (Some(f), LogFormat::Json) => builder.event_format(JsonLines).with_writer(std::sync::Mutex::new(f)).try_init(),
        (Some(f), LogFormat::Text) => builder.with_writer(std::sync::Mutex::new(f)).try_init(),
        (None, LogFormat::Json) => builder.event_format(JsonLines).with_writer(std::io::stderr).try_init(),
        (None, LogFormat::Text) => builder.with_writer(std::io::stderr).try_init(),
    };
}
