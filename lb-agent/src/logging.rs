//! The agent's log through `tracing`: text lines for people by default, one JSON
//! object per line with `--log-format json` or `[agent] log_format = "json"` (switched
//! by a reload too). The `log` records of the libraries (aya, rustls, the data
//! plane's own lines forwarded by aya-log) arrive as events of their target.
//! `RUST_LOG` filters as before (default `info`).
//!
//! A state change is one event whose fields carry it (`event` names its kind):
//! `backend_state` (vip, backend, state, reason, up, total), `vrrp_transition`
//! (vrrp_instance, from, to, priority, master), `reload` (ok, outcome).

use std::{
    io::IsTerminal as _,
    sync::{Mutex, OnceLock},
};

use tracing_subscriber::{
    EnvFilter, Layer, Registry,
    fmt::{self, MakeWriter},
    layer::{Layered, SubscriberExt as _},
    reload,
    util::SubscriberInitExt as _,
};

pub use crate::config::LogFormat;

type Base = Layered<EnvFilter, Registry>;
type Output = Box<dyn Layer<Base> + Send + Sync>;

struct Installed {
    handle: reload::Handle<Output, Base>,
    /// Given on the command line: the config's `log_format` does not change it.
    pinned: bool,
    current: Mutex<LogFormat>,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// The layer writing `format` to `writer`.
pub fn output<W>(format: LogFormat, writer: W, ansi: bool) -> Box<dyn Layer<Base> + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    match format {
        LogFormat::Text => fmt::layer().with_writer(writer).with_ansi(ansi).boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(writer)
            .boxed(),
    }
}

fn stderr_layer(format: LogFormat) -> Output {
    output(format, std::io::stderr, std::io::stderr().is_terminal())
}

/// Installs the process's subscriber (once; later calls change nothing). `pinned`:
/// the format came from the command line and stays.
pub fn init(format: LogFormat, pinned: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (layer, handle) = reload::Layer::new(stderr_layer(format));
    if tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init()
        .is_ok()
    {
        let _ = INSTALLED.set(Installed {
            handle,
            pinned,
            current: Mutex::new(format),
        });
    }
}

/// Switches to the config's `format` (a reload's): nothing when it is the current one
/// or the command line chose the format.
pub fn follow_config(format: LogFormat) {
    let Some(i) = INSTALLED.get() else {
        return;
    };
    let Ok(mut current) = i.current.lock() else {
        return;
    };
    if i.pinned || *current == format {
        return;
    }
    match i.handle.reload(stderr_layer(format)) {
        Ok(()) => {
            *current = format;
            tracing::info!(
                event = "log_format",
                format = format.name(),
                "log format now {}",
                format.name()
            );
        }
        Err(e) => tracing::warn!("switching the log format to {}: {e}", format.name()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::{fmt::MakeWriter, layer::SubscriberExt as _};

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut v) = self.0.lock() {
                v.extend_from_slice(buf);
            }
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Captured {
        type Writer = Captured;

        fn make_writer(&'w self) -> Self::Writer {
            self.clone()
        }
    }

    fn lines(format: LogFormat) -> String {
        let out = Captured::default();
        let subscriber = tracing_subscriber::registry()
            .with(EnvFilter::new("info"))
            .with(output(format, out.clone(), false));
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(
                event = "backend_state",
                vip = "web",
                backend = "198.18.1.11:80",
                state = "DOWN",
                up = 2,
                total = 3,
                "backend web/198.18.1.11:80 DOWN: L4 timeout after 1000 ms, 2 of 3 up"
            );
        });
        let bytes = out.0.lock().map(|v| v.clone()).unwrap_or_default();
        String::from_utf8(bytes).expect("utf-8")
    }

    #[test]
    fn a_state_change_is_one_json_object_with_its_fields() {
        let text = lines(LogFormat::Json);
        let line = text.lines().next().expect("one line");
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON");
        assert_eq!(v["level"], "WARN", "{line}");
        assert_eq!(v["event"], "backend_state", "{line}");
        assert_eq!(v["vip"], "web", "{line}");
        assert_eq!(v["backend"], "198.18.1.11:80", "{line}");
        assert_eq!(v["up"], 2, "{line}");
        assert!(
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("DOWN: L4 timeout")),
            "{line}"
        );
        assert!(v["timestamp"].is_string(), "{line}");
    }

    #[test]
    fn text_keeps_the_message_then_the_fields() {
        let text = lines(LogFormat::Text);
        assert!(
            text.contains("WARN")
                && text.contains("DOWN: L4 timeout after 1000 ms, 2 of 3 up")
                && text.contains("event=\"backend_state\""),
            "{text}"
        );
    }
}
