//! The publish history of a model (`engines/<model>/history`): the versions made live, oldest first, the last one
//! live. Plain text, one number a line after a comment, so that an operator can read it.

use super::{ModelName, Version};

/// Entries kept: rollbacks deeper than this are not worth an unbounded file (and `keep_versions` prunes the
/// versions long before).
pub const MAX_LEN: usize = 64;

/// The history as it stands with the link `live`: cut after the last occurrence of the live version, or with it
/// appended when it is absent; empty when nothing is live. This is how a switch or rollback interrupted between
/// its two writes is read (see the module doc of `store`).
pub fn reconcile(history: &[Version], live: Option<Version>) -> Vec<Version> {
    let Some(live) = live else { return Vec::new() };
    let mut out = match history.iter().rposition(|&v| v == live) {
        Some(i) => history[..=i].to_vec(),
        None => [history, &[live]].concat(),
    };
    if out.len() > MAX_LEN {
        out.drain(..out.len() - MAX_LEN);
    }
    out
}

pub fn parse(text: &str) -> Result<Vec<Version>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match Version::from_dir_name(line) {
            Some(v) => out.push(v),
            None => return Err(format!("line {}: `{line}` is not a version number", i + 1)),
        }
    }
    Ok(out)
}

pub fn render(model: &ModelName, versions: &[Version]) -> String {
    let start = versions.len().saturating_sub(MAX_LEN);
    let mut text = format!("# Versions of `{model}` made live by precisiond, oldest first; the last one is live.\n");
    for v in &versions[start..] {
        text.push_str(&format!("{v}\n"));
    }
    text
}
