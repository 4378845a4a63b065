//! A crude reader of the stylesheet, for the tests that keep it and the templates in step: the
//! classes its selectors name, its colour pairs, and the classes an HTML page uses. Not a CSS parser:
//! it reads only the plain stylesheet this crate ships (no nesting beyond `@media`, no escapes in
//! selectors).

use std::collections::BTreeSet;

/// `css` without its `/* … */` comments.
fn strip_comments(css: &str) -> String {
    let mut out = String::with_capacity(css.len());
    let mut rest = css;
    while let Some(at) = rest.find("/*") {
        out.push_str(&rest[..at]);
        rest = match rest[at + 2..].find("*/") {
            Some(end) => &rest[at + 2 + end + 2..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}

/// Every rule of `css` as (selector list, declarations); at-rules (`@media …`) are entered, not
/// returned.
pub(crate) fn rules(css: &str) -> Vec<(String, String)> {
    let css = strip_comments(css);
    let mut out = Vec::new();
    let mut start = 0;
    let mut selector: Option<String> = None;
    for (i, c) in css.char_indices() {
        match c {
            '{' => {
                let head = css[start..i].trim().to_string();
                if !head.starts_with('@') {
                    selector = Some(head);
                }
                start = i + 1;
            }
            '}' => {
                if let Some(sel) = selector.take() {
                    out.push((sel, css[start..i].trim().to_string()));
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    out
}

/// Where `css` is malformed for this reader: a block opened inside a rule, an unbalanced brace, a
/// selector with `@` or `;` in it (a rule broken by an edit), a declaration without a `:`.
#[cfg(test)]
pub(crate) fn problems(css: &str) -> Vec<String> {
    let css = strip_comments(css);
    let mut out = Vec::new();
    // true: a rule; false: an at-rule (`@media`) holding rules.
    let mut open: Vec<bool> = Vec::new();
    let mut start = 0;
    for (i, c) in css.char_indices() {
        match c {
            '{' => {
                let head = css[start..i].trim();
                if open.last() == Some(&true) {
                    out.push(format!("a block opened inside a rule: {head:.60}"));
                }
                let rule = !head.starts_with('@');
                if rule && (head.is_empty() || head.contains('@') || head.contains(';')) {
                    out.push(format!("not a selector: {head:.60}"));
                }
                open.push(rule);
                start = i + 1;
            }
            '}' => {
                let inner = css[start..i].trim();
                match open.pop() {
                    Some(true) => {
                        for d in inner.split(';').map(str::trim).filter(|d| !d.is_empty()) {
                            if !d.contains(':') {
                                out.push(format!("not a declaration: {d:.60}"));
                            }
                        }
                    }
                    Some(false) if inner.is_empty() => {}
                    Some(false) => out.push(format!("text outside a rule: {inner:.60}")),
                    None => out.push("a } that closes nothing".to_string()),
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    if !open.is_empty() {
        out.push(format!("{} block(s) not closed", open.len()));
    }
    out
}

fn is_class_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// The class names a selector list names (`tr.silent > th`, `.sev-high::before` …).
fn selector_classes(sel: &str, out: &mut BTreeSet<String>) {
    // Attribute values (`[data-state="live"]`) and strings are not selectors of classes.
    let mut plain = String::with_capacity(sel.len());
    let mut depth = 0;
    for c in sel.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    let mut rest = plain.as_str();
    while let Some(at) = rest.find('.') {
        let name: String = rest[at + 1..]
            .chars()
            .take_while(|c| is_class_char(*c))
            .collect();
        if !name.is_empty() {
            out.insert(name.clone());
        }
        rest = &rest[at + 1 + name.len()..];
    }
}

/// Every class some rule of `css` names.
pub(crate) fn defined_classes(css: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (sel, _) in rules(css) {
        selector_classes(&sel, &mut out);
    }
    out
}

/// Every class an HTML document uses (`class="a b"`; the templates only write double quotes).
pub(crate) fn used_classes(html: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = html;
    while let Some(at) = rest.find(" class=\"") {
        rest = &rest[at + 8..];
        let Some(end) = rest.find('"') else { break };
        out.extend(rest[..end].split_whitespace().map(str::to_string));
        rest = &rest[end..];
    }
    out
}

/// The classes `html` uses that no rule of the dashboard's stylesheet names.
pub fn undefined_classes(html: &str) -> Vec<String> {
    let defined = defined_classes(super::APP_CSS);
    used_classes(html)
        .into_iter()
        .filter(|c| !defined.contains(c))
        .collect()
}

/// An sRGB colour, `#rgb` or `#rrggbb`.
#[cfg(test)]
pub(crate) fn hex(v: &str) -> Option<[u8; 3]> {
    let h = v.trim().strip_prefix('#')?;
    let digit = |i: usize, n: usize| u8::from_str_radix(h.get(i..i + n)?, 16).ok();
    match h.len() {
        3 => Some([digit(0, 1)? * 17, digit(1, 1)? * 17, digit(2, 1)? * 17]),
        6 => Some([digit(0, 2)?, digit(2, 2)?, digit(4, 2)?]),
        _ => None,
    }
}

/// WCAG 2 relative luminance.
#[cfg(test)]
fn luminance(c: [u8; 3]) -> f64 {
    let f = |v: u8| {
        let v = f64::from(v) / 255.0;
        if v <= 0.03928 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2])
}

/// WCAG 2 contrast ratio of two colours (1 to 21).
#[cfg(test)]
pub(crate) fn contrast(a: [u8; 3], b: [u8; 3]) -> f64 {
    let (la, lb) = (luminance(a), luminance(b));
    let (hi, lo) = if la > lb { (la, lb) } else { (lb, la) };
    (hi + 0.05) / (lo + 0.05)
}

/// The value of property `name` in a declaration block (the last one wins, as in CSS).
#[cfg(test)]
pub(crate) fn property<'a>(decls: &'a str, name: &str) -> Option<&'a str> {
    decls
        .split(';')
        .filter_map(|d| d.split_once(':'))
        .filter(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim())
        .next_back()
}
