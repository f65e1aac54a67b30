//! Logs go to stdout, where a container runtime collects them; JSON for log
//! pipelines, text for people.

use tracing::level_filters::LevelFilter;

use crate::config::LogFormat;

pub fn init(level: LevelFilter, format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stdout)
        .with_ansi(false);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
        LogFormat::Text => builder.init(),
    }
}

/// Milliseconds rounded to a tenth: finer digits in a log line are noise.
pub(crate) fn tenths_of_millis(duration: std::time::Duration) -> f64 {
    (duration.as_secs_f64() * 10_000.0).round() / 10.0
}
