//! The INI dialect of fail2ban's config files (Python `ConfigParser`): `[section]` headers, `key = value` or
//! `key: value`, values continued on more-indented lines, full-line `#`/`;` comments (also between continuation
//! lines), blank lines inside values. Keys are lower-cased as Python does. This module only splits text into
//! sections and entries; includes and interpolation live in `config`.

use super::error::FilterError;

/// One `[section]` of one file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Section {
    /// The header as written (`Definition`, `INCLUDES`, …).
    pub name: String,
    /// `(key, value)` in file order; keys lower-cased, multi-line values joined with `\n`.
    pub entries: Vec<(String, String)>,
}

/// Splits `text` into sections. `file` names the file in errors.
pub(crate) fn parse(file: &str, text: &str) -> Result<Vec<Section>, FilterError> {
    let mut sections: Vec<Section> = Vec::new();
    // The value being built: its key's indent and its lines (blank lines kept until something follows).
    let mut open: Option<(usize, Vec<String>, usize)> = None; // (indent, lines, pending blanks)
    for (idx, raw) in text.lines().enumerate() {
        let lineno = idx + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let stripped = strip_inline_comment(line);
        if stripped.trim().is_empty() && !line.trim().is_empty() {
            // Only a comment: not a blank line of a value.
            continue;
        }
        let line = stripped;
        let trimmed = line.trim();
        if trimmed.is_empty() {
            if let Some((_, _, blanks)) = open.as_mut() {
                *blanks += 1;
            }
            continue;
        }
        if trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if let Some((key_indent, lines, blanks)) = open.as_mut() {
            if indent > *key_indent {
                for _ in 0..*blanks {
                    lines.push(String::new());
                }
                *blanks = 0;
                lines.push(trimmed.to_string());
                continue;
            }
        }
        close_value(&mut sections, &mut open);
        // Python's header pattern `\[(.+)\]`: text after the last `]` (a `# comment`) is ignored.
        if let Some(end) = trimmed
            .rfind(']')
            .filter(|&e| trimmed.starts_with('[') && e > 1)
        {
            let name = trimmed[1..end].trim().to_string();
            sections.push(Section {
                name,
                entries: Vec::new(),
            });
            continue;
        }
        if trimmed.starts_with('[') && !trimmed.contains('=') {
            return Err(FilterError::Syntax {
                file: file.into(),
                line: lineno,
                what: format!("section header without its closing `]`: {trimmed:?}"),
            });
        }
        let Some(section) = sections.last_mut() else {
            return Err(FilterError::Syntax {
                file: file.into(),
                line: lineno,
                what: "a key outside any [section] (file must start with a section header)".into(),
            });
        };
        let Some(pos) = trimmed.find(['=', ':']) else {
            return Err(FilterError::Syntax {
                file: file.into(),
                line: lineno,
                what: format!(
                    "[{}]: line is neither `key = value` nor a [section]: {trimmed:?}",
                    section.name
                ),
            });
        };
        let key = trimmed[..pos].trim().to_lowercase();
        if key.is_empty() {
            return Err(FilterError::Syntax {
                file: file.into(),
                line: lineno,
                what: format!(
                    "[{}]: empty key before {:?}",
                    section.name,
                    &trimmed[pos..pos + 1]
                ),
            });
        }
        let value = trimmed[pos + 1..].trim().to_string();
        section.entries.push((key, String::new()));
        open = Some((indent, vec![value], 0));
    }
    close_value(&mut sections, &mut open);
    Ok(sections)
}

/// `line` without an inline comment: fail2ban's parser takes a `;` preceded by white space (or opening the
/// line) as the start of a comment, in values and continuation lines alike.
fn strip_inline_comment(line: &str) -> &str {
    let b = line.as_bytes();
    let cut = (0..b.len()).find(|&i| b[i] == b';' && (i == 0 || b[i - 1].is_ascii_whitespace()));
    match cut {
        Some(i) => &line[..i],
        None => line,
    }
}

/// Stores the open multi-line value into the last entry of the last section.
fn close_value(sections: &mut [Section], open: &mut Option<(usize, Vec<String>, usize)>) {
    if let Some((_, lines, _)) = open.take() {
        if let Some((_, value)) = sections.last_mut().and_then(|s| s.entries.last_mut()) {
            *value = lines.join("\n").trim_end().to_string();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_keys_and_continuations() {
        let text = "# head\n[Definition]\nfailregex = ^a$\n  ^b$\n  # note\n\n  ^c$\nKey: v\n[Init]\nmode=x\n";
        let s = parse("t", text).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0].entries[0],
            ("failregex".into(), "^a$\n^b$\n\n^c$".into())
        );
        assert_eq!(s[0].entries[1], ("key".into(), "v".into()));
        assert_eq!(s[1].entries[0], ("mode".into(), "x".into()));
    }

    #[test]
    fn inline_semicolon_comments_and_commented_headers_read_as_fail2ban_does() {
        let text = "[Definition] # the main part\nfailregex = ^a <HOST>$ ; why\n  ^b;c$\n  ; whole line\n  ^d$\t;x\n";
        let s = parse("t", text).unwrap();
        assert_eq!(s[0].name, "Definition");
        assert_eq!(s[0].entries[0].1, "^a <HOST>$\n^b;c$\n^d$");
        let e = parse("t", "[Definition\nfailregex = x\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("t:1: section header without its closing"),
            "{e}"
        );
    }

    #[test]
    fn empty_value_then_lines() {
        let s = parse("t", "[D]\nfailregex =\n    ^x\n    ^y\nignoreregex =\n").unwrap();
        assert_eq!(s[0].entries[0].1, "\n^x\n^y");
        assert_eq!(s[0].entries[1].1, "");
    }

    #[test]
    fn key_before_section_is_an_error() {
        let e = parse("f.conf", "a = b\n").unwrap_err().to_string();
        assert!(e.contains("f.conf:1"), "{e}");
    }
}
