//! Writing a command's result to stdout. Progress and errors go to stderr, so
//! that stdout carries only the result (a table, or JSON for `--json`).

use std::io::{ErrorKind, Write};

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
