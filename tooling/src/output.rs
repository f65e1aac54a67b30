//! What a command shows: its result on stdout (a table for people, JSON for
//! `--json`), in aligned tables and human units. Progress and errors go to
//! stderr, so that stdout carries only the result.

use std::fmt::Write as _;
use std::io::{ErrorKind, Write};
use std::time::Duration;

/// Writes `text` to stdout. A reader that stopped reading (`| head`) is not
/// an error.
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() != ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(error).context("cannot write to stdout"))
        }
        _ => Ok(()),
    }
}

/// Writes a value as pretty JSON and a newline.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    print(&(serde_json::to_string_pretty(value)? + "\n"))
}

/// A plain-text table with aligned columns.
pub struct Table {
    headers: Vec<String>,
    right_aligned: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            right_aligned: vec![false; headers.len()],
            rows: Vec::new(),
        }
    }

    /// Numbers read best aligned on the right.
    pub fn right_align(mut self, columns: &[usize]) -> Table {
        for &column in columns {
            if let Some(flag) = self.right_aligned.get_mut(column) {
                *flag = true;
            }
        }
        self
    }

    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    pub fn render(&self) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (column, cell) in row.iter().enumerate().take(columns) {
                widths[column] = widths[column].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: &[String]| {
            let mut text = String::new();
            for (column, width) in widths.iter().enumerate() {
                let cell = cells.get(column).map_or("", String::as_str);
                if column > 0 {
                    text.push_str("  ");
                }
                if self.right_aligned[column] {
                    let _ = write!(text, "{cell:>width$}");
                } else {
                    let _ = write!(text, "{cell:<width$}");
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(&self.headers);
        for row in &self.rows {
            line(row);
        }
        out
    }
}

/// Decimal megabytes, as `docker images` prints them.
#[allow(clippy::cast_precision_loss)]
pub fn megabytes(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// `12.3 MB`, or kB/B for small sizes so they do not read as zero.
pub fn size(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let value = bytes as f64;
    if bytes >= 1_000_000 {
        format!("{:.1} MB", value / 1e6)
    } else if bytes >= 1_000 {
        format!("{:.1} kB", value / 1e3)
    } else {
        format!("{bytes} B")
    }
}

/// Round figures (limits) in whole seconds, measured ones in milliseconds
/// below ten seconds, longer ones in seconds with two decimals.
pub fn duration(elapsed: Duration) -> String {
    if elapsed >= Duration::from_secs(1) && elapsed.subsec_nanos() == 0 {
        format!("{} s", elapsed.as_secs())
    } else if elapsed < Duration::from_secs(10) {
        format!("{} ms", elapsed.as_millis())
    } else {
        format!("{:.2} s", elapsed.as_secs_f64())
    }
}

/// Whole milliseconds, for JSON.
pub fn millis(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
}

/// A digest as docker shows ids: `sha256:` and the first 12 hex digits.
pub fn digest(digest: &str) -> String {
    digest.chars().take("sha256:".len() + 12).collect()
}

/// `path` below `root` as a relative path, for messages; as is elsewhere.
pub fn relative(root: &std::path::Path, path: &std::path::Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Shortens text to `max` characters for a table cell.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let kept: String = text.chars().take(max.saturating_sub(1)).collect();
        format!("{kept}…")
    }
}

/// Text from a program's output without its terminal escape sequences
/// (colours, cursor moves), which would garble a verdict quoting it.
pub fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        match chars.next() {
            // CSI: parameters and intermediates, then one final byte.
            Some('[') => {
                for c in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        break;
                    }
                }
            }
            // OSC: up to BEL or ESC \.
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\u{7}' || (c == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                        break;
                    }
                }
            }
            // Any other escape is two characters long.
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_loses_colours_and_titles_but_nothing_else() {
        assert_eq!(
            plain("\u{1b}[2m2026-01-01\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m ready"),
            "2026-01-01  INFO ready"
        );
        assert_eq!(plain("\u{1b}]0;title\u{7}after"), "after");
        assert_eq!(plain("\u{1b}]8;;x\u{1b}\\link"), "link");
        assert_eq!(plain("no escapes: [1m] é"), "no escapes: [1m] é");
        assert_eq!(plain("cut short \u{1b}["), "cut short ");
    }

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let mut table = Table::new(&["name", "size"]).right_align(&[1]);
        table.row(["a", "1 B"]);
        table.row(["longer", "12.3 MB"]);
        assert_eq!(
            table.render(),
            "name       size\na           1 B\nlonger  12.3 MB\n"
        );
    }

    #[test]
    fn sizes_pick_a_unit_that_keeps_small_figures_visible() {
        assert_eq!(size(121), "121 B");
        assert_eq!(size(1_740), "1.7 kB");
        assert_eq!(size(13_293_093), "13.3 MB");
    }

    #[test]
    fn durations_are_milliseconds_until_ten_seconds() {
        assert_eq!(duration(Duration::from_millis(742)), "742 ms");
        assert_eq!(duration(Duration::from_millis(1_238)), "1238 ms");
        assert_eq!(duration(Duration::from_millis(12_345)), "12.35 s");
    }

    #[test]
    fn whole_seconds_read_as_seconds() {
        assert_eq!(duration(Duration::from_secs(5)), "5 s");
        assert_eq!(duration(Duration::from_secs(20)), "20 s");
    }

    #[test]
    fn long_text_is_cut_with_an_ellipsis() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }
}
