//! The two textual edits `new-pack` makes: a member appended to the workspace `members` list of
//! the root `Cargo.toml`, and a `[packs.<name>]` block appended to `config.toml`. Both keep the
//! rest of the file byte for byte (comments, order, spacing), and both are checked by parsing
//! the result: an edit that would not read back as intended is refused, not written.

use super::ScaffoldError;

/// `members` as the workspace table lists them (an absent list is empty).
pub(super) fn members(manifest: &toml::Table) -> Vec<String> {
    manifest
        .get("workspace")
        .and_then(|w| w.get("members"))
        .and_then(|m| m.as_array())
        .map(|list| {
            list.iter()
                .filter_map(|m| m.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `text` (the root `Cargo.toml`) with `member` appended to `[workspace] members`, in the
/// list's own layout: a line of its own, indented as the last member, in a multi-line list;
/// `, "member"` before the `]` of a one-line list.
pub(super) fn add_member(text: &str, member: &str) -> Result<String, ScaffoldError> {
    let refuse = |why: &str| ScaffoldError::Edit {
        file: "Cargo.toml",
        why: format!("{why}; add \"{member}\" to [workspace] members by hand"),
    };
    let before = parse(text, "Cargo.toml")?;
    let (open, close) =
        members_span(text).ok_or_else(|| refuse("no `members = [` list under [workspace]"))?;
    let inside = &text[open + 1..close];
    let quoted = format!("\"{member}\"");
    let edited = if inside.contains('\n') {
        // the line holding `]`: insert a line of our own before it
        let line_start = text[..close].rfind('\n').map_or(0, |i| i + 1);
        let indent = last_member_indent(inside).unwrap_or("    ");
        let mut out = String::with_capacity(text.len() + quoted.len() + 8);
        let head = &text[..line_start];
        let last = head.trim_end();
        if last.ends_with('"') {
            // the last member ends its line without a comma (nor a comment): give it one
            out.push_str(last);
            out.push(',');
            out.push_str(&head[last.len()..]);
        } else {
            out.push_str(head);
        }
        out.push_str(&format!("{indent}{quoted},\n"));
        out.push_str(&text[line_start..]);
        out
    } else {
        let trimmed = inside.trim_end();
        let sep = if trimmed.trim().is_empty() || trimmed.ends_with(',') {
            ""
        } else {
            ", "
        };
        let at = open + 1 + trimmed.len();
        format!("{}{sep}{quoted}{}", &text[..at], &text[at..])
    };
    let after = parse(&edited, "Cargo.toml")?;
    let mut expected = members(&before);
    expected.push(member.to_string());
    if members(&after) != expected {
        return Err(refuse(
            "the members list has a layout this edit does not know",
        ));
    }
    Ok(edited)
}

/// Byte offsets of the `[` and `]` of `members = [ … ]` in the `[workspace]` table.
fn members_span(text: &str) -> Option<(usize, usize)> {
    let mut offset = 0;
    let mut in_workspace = false;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            in_workspace = trimmed.starts_with("[workspace]");
        } else if in_workspace && let Some(rest) = trimmed.strip_prefix("members") {
            let rest = rest.trim_start();
            if let Some(value) = rest.strip_prefix('=') {
                let bracket = value.find('[')?;
                let open = offset + (line.len() - value.len()) + bracket;
                let close = open + text[open..].find(']')?;
                return Some((open, close));
            }
        }
        offset += line.len();
    }
    None
}

/// The indentation of the last quoted member on a line of its own.
fn last_member_indent(inside: &str) -> Option<&str> {
    inside
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('"'))
        .map(|l| &l[..l.len() - l.trim_start().len()])
}

/// `text` (a `config.toml`) with `block` appended, after a newline of its own if the file
/// lacks one; the result must parse and enable `[packs.<name>]`.
pub(super) fn add_pack_block(text: &str, name: &str, block: &str) -> Result<String, ScaffoldError> {
    let mut edited = String::with_capacity(text.len() + block.len() + 1);
    edited.push_str(text);
    if !edited.is_empty() && !edited.ends_with('\n') {
        edited.push('\n');
    }
    edited.push_str(block);
    let after = parse(&edited, "config.toml")?;
    let enabled = after
        .get("packs")
        .and_then(|p| p.get(name))
        .and_then(|p| p.get("enabled"))
        .and_then(|e| e.as_bool());
    if enabled != Some(true) {
        return Err(ScaffoldError::Edit {
            file: "config.toml",
            why: format!("the appended block does not read back as [packs.{name}] enabled = true"),
        });
    }
    Ok(edited)
}

/// Is there a `[packs.<name>]` table (or a `packs.<name>` key) in the config?
pub(super) fn has_pack(config: &toml::Table, name: &str) -> bool {
    config.get("packs").and_then(|p| p.get(name)).is_some()
}

pub(super) fn parse(text: &str, file: &'static str) -> Result<toml::Table, ScaffoldError> {
    text.parse::<toml::Table>()
        .map_err(|e| ScaffoldError::Parse {
            file,
            message: e.message().to_string(),
        })
}
