//! Views of an observation's fields: a field, or a part of it (the path or the query of a request
//! target, its file name), as sent and percent-decoded once and twice. Every view the scenarios use is
//! numbered once at load; for each observation a view is computed at most once, into buffers reused
//! from one observation to the next, and the `contains` lists of all conditions on a view run as one
//! automaton.

use crate::scenario::def::Part;
use crate::signatures::hex;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use sentinel_core::Observed;
use std::borrow::Cow;

/// A way of looking at a field: which part of it, and whether decoded forms count too.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ViewSpec {
    pub(crate) field: String,
    pub(crate) part: Part,
    pub(crate) decode: bool,
}

/// Every view the scenarios use, numbered, so an observation's views are computed once. The
/// `contains` lists of every condition on a view are merged into one automaton per view (and case
/// mode), run once per observation: each condition then only reads its bit.
#[derive(Debug, Default)]
pub(crate) struct Views {
    specs: Vec<ViewSpec>,
    contains: Vec<ViewContains>,
    /// Distinct `service` lists of the filters (most filters share one).
    services: Vec<Vec<String>>,
    /// Distinct conditions: the same test in several scenarios runs once per observation.
    conditions: Vec<crate::scenario::def::Condition>,
}

#[derive(Debug, Default)]
struct ViewContains {
    /// Per condition: its needles and whether it is case-sensitive.
    lists: Vec<(Vec<String>, bool)>,
    /// Built by [`Views::finalize`]: automaton and, per pattern, the condition it belongs to.
    automata: Vec<(AhoCorasick, Vec<u32>)>,
}

impl Views {
    pub(crate) fn id(&mut self, spec: ViewSpec) -> usize {
        if let Some(i) = self.specs.iter().position(|s| *s == spec) {
            return i;
        }
        self.specs.push(spec);
        self.contains.push(ViewContains::default());
        self.specs.len() - 1
    }

    pub(crate) fn len(&self) -> usize {
        self.specs.len()
    }

    /// The number of a condition in the per-observation cache (equal conditions share one).
    pub(crate) fn condition_id(&mut self, c: &crate::scenario::def::Condition) -> usize {
        if let Some(i) = self.conditions.iter().position(|k| k == c) {
            return i;
        }
        self.conditions.push(c.clone());
        self.conditions.len() - 1
    }

    pub(crate) fn service_list(&mut self, list: &[String]) -> usize {
        if let Some(i) = self.services.iter().position(|l| l == list) {
            return i;
        }
        self.services.push(list.to_vec());
        self.services.len() - 1
    }

    /// Registers a `contains` list on `view`; returns its number among the view's lists.
    pub(crate) fn add_contains(&mut self, view: usize, needles: Vec<String>, cs: bool) -> usize {
        let vc = &mut self.contains[view];
        vc.lists.push((needles, cs));
        vc.lists.len() - 1
    }

    /// Builds the merged automata; call once every filter is compiled.
    pub(crate) fn finalize(&mut self) -> Result<(), String> {
        for (spec, vc) in self.specs.iter().zip(&mut self.contains) {
            vc.automata.clear();
            for cs in [false, true] {
                let mut patterns = Vec::new();
                let mut owner = Vec::new();
                for (i, (needles, _)) in vc.lists.iter().enumerate().filter(|(_, l)| l.1 == cs) {
                    for n in needles {
                        patterns.push(n.as_str());
                        owner.push(i as u32);
                    }
                }
                if patterns.is_empty() {
                    continue;
                }
                // A full DFA: one transition per byte for the overlapping search (the lists are
                // small enough for its memory).
                let ac = AhoCorasickBuilder::new()
                    .ascii_case_insensitive(!cs)
                    .match_kind(MatchKind::Standard)
                    .kind(Some(AhoCorasickKind::DFA))
                    .build(&patterns)
                    .map_err(|e| format!("`{}` contains: {e}", spec.field))?;
                vc.automata.push((ac, owner));
            }
        }
        Ok(())
    }
}

/// Reusable storage for the views of one observation at a time: a slot per view, valid for the
/// observation whose generation it carries, with string buffers kept between observations so the hot
/// path does not allocate.
#[derive(Debug, Default)]
pub(crate) struct MemoBuf {
    gen: u32,
    slots: Vec<Slot>,
    scratch: Vec<u8>,
    /// Per service list: the generation it was decided for, and the decision.
    services: Vec<(u32, bool)>,
    /// Per distinct condition: the generation it was decided for, and the decision.
    conditions: Vec<(u32, bool)>,
}

#[derive(Debug, Default)]
struct Slot {
    gen: u32,
    present: bool,
    n: usize,
    forms: [String; 4],
    /// Generation for which `found` holds.
    found_gen: u32,
    /// Per `contains` list of the view: whether any form contains one of its needles.
    found: Vec<bool>,
}

/// The views of one observation, computed on first use.
pub(crate) struct Memo<'a, 'b, O: Observed + ?Sized> {
    pub(crate) o: &'a O,
    buf: &'b mut MemoBuf,
}

impl<'a, 'b, O: Observed + ?Sized> Memo<'a, 'b, O> {
    pub(crate) fn new(o: &'a O, buf: &'b mut MemoBuf, views: &Views) -> Self {
        buf.gen = buf.gen.wrapping_add(1);
        if buf.gen == 0 {
            // Wrapped: no slot may look valid.
            for s in &mut buf.slots {
                s.gen = u32::MAX;
                s.found_gen = u32::MAX;
            }
            for s in buf.services.iter_mut().chain(buf.conditions.iter_mut()) {
                s.0 = u32::MAX;
            }
            buf.gen = 1;
        }
        if buf.slots.len() < views.len() {
            buf.slots.resize_with(views.len(), Slot::default);
        }
        if buf.services.len() < views.services.len() {
            buf.services.resize(views.services.len(), (0, false));
        }
        if buf.conditions.len() < views.conditions.len() {
            buf.conditions.resize(views.conditions.len(), (0, false));
        }
        Self { o, buf }
    }

    /// The forms of view `id` (the value first, then its decoded forms), or `None` if the field is absent.
    pub(crate) fn get(&mut self, id: usize, views: &Views) -> Option<&[String]> {
        let spec = views.specs.get(id)?;
        let gen = self.buf.gen;
        let scratch = &mut self.buf.scratch;
        let slot = self.buf.slots.get_mut(id)?;
        if slot.gen != gen {
            slot.gen = gen;
            slot.n = 0;
            slot.present = false;
            if let Some(v) = self.o.field(&spec.field) {
                slot.present = true;
                let v = part_of(v, spec.part);
                let [f0, f1, f2, _] = &mut slot.forms;
                f0.clear();
                f0.push_str(&v);
                slot.n = 1;
                if spec.decode && decode_into(f0, scratch, f1) {
                    slot.n = 2;
                    if decode_into(f1, scratch, f2) {
                        slot.n = 3;
                    }
                }
                if spec.decode && spec.part == Part::Path {
                    // The path as the server resolves it, when that differs from what was sent.
                    let (done, rest) = slot.forms.split_at_mut(slot.n);
                    if let (Some(last), Some(out)) = (done.last(), rest.first_mut()) {
                        if normalize_path(last, out) {
                            slot.n += 1;
                        }
                    }
                }
            }
        }
        slot.present.then(|| &slot.forms[..slot.n])
    }

    /// The decision on condition `id` for this observation, if it was taken.
    pub(crate) fn cached(&self, id: usize) -> Option<bool> {
        self.buf
            .conditions
            .get(id)
            .and_then(|&(g, v)| (g == self.buf.gen).then_some(v))
    }

    /// Records the decision on condition `id` for this observation.
    pub(crate) fn cache(&mut self, id: usize, v: bool) {
        let gen = self.buf.gen;
        if let Some(slot) = self.buf.conditions.get_mut(id) {
            *slot = (gen, v);
        }
    }

    /// Whether the observation's service is in service list `id` (`sshd` also matches `sshd-session`).
    pub(crate) fn service_in(&mut self, id: usize, views: &Views) -> bool {
        let gen = self.buf.gen;
        let (Some(cached), Some(list)) = (self.buf.services.get_mut(id), views.services.get(id))
        else {
            return false;
        };
        if cached.0 != gen {
            let svc = self.o.service();
            let ok = list.iter().any(|s| {
                svc == s
                    || (svc.len() > s.len()
                        && svc.starts_with(s.as_str())
                        && svc.as_bytes()[s.len()] == b'-')
            });
            *cached = (gen, ok);
        }
        cached.1
    }

    /// Whether the view's `contains` list `list` matched any form (the field is present).
    pub(crate) fn contains(&mut self, id: usize, list: usize, views: &Views) -> bool {
        if self.get(id, views).is_none() {
            return false;
        }
        let gen = self.buf.gen;
        let (Some(slot), Some(vc)) = (self.buf.slots.get_mut(id), views.contains.get(id)) else {
            return false;
        };
        if slot.found_gen != gen {
            slot.found_gen = gen;
            slot.found.clear();
            slot.found.resize(vc.lists.len(), false);
            for form in &slot.forms[..slot.n] {
                for (ac, owner) in &vc.automata {
                    for m in ac.find_overlapping_iter(form.as_str()) {
                        if let Some(&o) = owner.get(m.pattern().as_usize()) {
                            slot.found[o as usize] = true;
                        }
                    }
                }
            }
        }
        slot.found.get(list).copied().unwrap_or(false)
    }
}

/// The given part of a field's value, borrowed when the value is.
pub(crate) fn part_of(v: Cow<'_, str>, part: Part) -> Cow<'_, str> {
    fn range(s: &str, part: Part) -> (usize, usize) {
        let q = s.find('?');
        let path_end = q.unwrap_or(s.len());
        match part {
            Part::Whole => (0, s.len()),
            Part::Path => (0, path_end),
            Part::Query => (q.map_or(s.len(), |i| i + 1), s.len()),
            Part::File => (s[..path_end].rfind('/').map_or(0, |i| i + 1), path_end),
        }
    }
    let (a, b) = range(&v, part);
    if a == 0 && b == v.len() {
        return v;
    }
    match v {
        Cow::Borrowed(s) => Cow::Borrowed(&s[a..b]),
        Cow::Owned(s) => Cow::Owned(s[a..b].to_string()),
    }
}

/// One round of decoding: `%HH` and nginx's `\xHH` escapes to bytes, `+` to a space. `None` when there
/// was nothing to decode. Invalid UTF-8 in the result is replaced, never refused.
#[cfg(test)]
pub(crate) fn decode(s: &str) -> Option<String> {
    let mut scratch = Vec::new();
    let mut out = String::new();
    decode_into(s, &mut scratch, &mut out).then_some(out)
}

/// [`decode`] into `out` (through `scratch`), without allocating once the buffers have grown; whether
/// anything was decoded.
fn decode_into(s: &str, scratch: &mut Vec<u8>, out: &mut String) -> bool {
    let b = s.as_bytes();
    if !b.iter().any(|&c| c == b'%' || c == b'+' || c == b'\\') {
        // Nothing escaped, but raw look-alikes (a JSON log keeps UTF-8 as sent) still fold.
        if s.is_ascii() || !s.chars().any(folds) {
            return false;
        }
        out.clear();
        push_folded(out, s);
        return true;
    }
    scratch.clear();
    let changed = decode_bytes(b, scratch);
    if changed {
        out.clear();
        match std::str::from_utf8(scratch) {
            Ok(t) => push_folded(out, t),
            Err(_) => push_folded(out, &String::from_utf8_lossy(scratch)),
        }
    }
    changed
}

/// Appends `t`, folding the look-alikes servers map to ASCII ("best fit"): full-width forms
/// (`．．／` is `../`) and the division slash and set minus (`∕`, `∖`), so signatures written in ASCII
/// see through them.
/// `path` as a server resolves it before mapping it to a file: repeated slashes merged, `/./` segments
/// dropped, `;parameters` of a segment dropped (Tomcat, Jetty), and the text from a NUL byte on ignored
/// (old PHP). Writes into `out` and says whether anything changed.
fn normalize_path(path: &str, out: &mut String) -> bool {
    let cut = path.find('\0').unwrap_or(path.len());
    let had_nul = cut < path.len();
    let path = &path[..cut];
    if !had_nul
        && !path.contains("//")
        && !path.contains("/./")
        && !path.ends_with("/.")
        && !path.contains(';')
    {
        return false;
    }
    out.clear();
    for (i, seg) in path.split('/').enumerate() {
        let seg = seg.split(';').next().unwrap_or("");
        if i > 0 && (seg.is_empty() || seg == ".") {
            continue;
        }
        if i > 0 {
            out.push('/');
        }
        out.push_str(seg);
    }
    if path.ends_with('/') && !out.ends_with('/') {
        out.push('/');
    }
    had_nul || out != path
}

fn folds(c: char) -> bool {
    matches!(c, '\u{FF01}'..='\u{FF5E}' | '\u{2215}' | '\u{2216}')
}

fn push_folded(out: &mut String, t: &str) {
    if t.is_ascii() {
        out.push_str(t);
        return;
    }
    out.extend(t.chars().map(|c| match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        '\u{2215}' => '/',
        '\u{2216}' => '\\',
        _ => c,
    }));
}

/// The byte an escape at `i` (`%HH` or `\\xHH`) spells, and the escape's length.
fn decode_one(b: &[u8], i: usize) -> Option<(u8, usize)> {
    let pair = |j: usize| {
        hex(*b.get(j)?)
            .zip(hex(*b.get(j + 1)?))
            .map(|(h, l)| h << 4 | l)
    };
    match b.get(i)? {
        b'%' => pair(i + 1).map(|v| (v, 3)),
        b'\\' if matches!(b.get(i + 1), Some(b'x' | b'X')) => pair(i + 2).map(|v| (v, 4)),
        _ => None,
    }
}

fn decode_bytes(b: &[u8], out: &mut Vec<u8>) -> bool {
    let mut i = 0;
    let mut changed = false;
    while i < b.len() {
        let c = b[i];
        // IIS's `%uHHHH`: the code point, as UTF-8.
        if c == b'%' && i + 5 < b.len() && (b[i + 1] == b'u' || b[i + 1] == b'U') {
            let cp = b[i + 2..i + 6]
                .iter()
                .try_fold(0u32, |acc, &d| hex(d).map(|v| acc << 4 | u32::from(v)));
            if let Some(ch) = cp.and_then(char::from_u32) {
                let mut tmp = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
                i += 6;
                changed = true;
                continue;
            }
        }
        let esc = match c {
            b'%' if i + 2 < b.len() => hex(b[i + 1])
                .zip(hex(b[i + 2]))
                .map(|(h, l)| (h << 4 | l, 3)),
            b'\\' if i + 3 < b.len() && (b[i + 1] == b'x' || b[i + 1] == b'X') => hex(b[i + 2])
                .zip(hex(b[i + 3]))
                .map(|(h, l)| (h << 4 | l, 4)),
            _ => None,
        };
        if let Some((byte, len)) = esc {
            // An overlong two-byte UTF-8 form (`%c0%af` for `/`, `%c0%ae` for `.`) that lenient
            // decoders accept: the ASCII byte it spells.
            if byte == 0xC0 || byte == 0xC1 {
                if let Some((cont, clen)) = decode_one(b, i + len) {
                    if cont & 0xC0 == 0x80 {
                        out.push((byte & 1) << 6 | (cont & 0x3F));
                        i += len + clen;
                        changed = true;
                        continue;
                    }
                }
            }
            out.push(byte);
            i += len;
            changed = true;
        } else if c == b'+' {
            out.push(b' ');
            i += 1;
            changed = true;
        } else {
            out.push(c);
            i += 1;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_undoes_percent_nginx_and_plus_escapes() {
        assert_eq!(decode("/a%2e%2E/b"), Some("/a../b".into()));
        assert_eq!(
            decode("q=O%27Brien+and+co"),
            Some("q=O'Brien and co".into())
        );
        assert_eq!(
            decode(r"/index.php?s=/index/\x5Cthink"),
            Some(r"/index.php?s=/index/\think".into())
        );
        assert_eq!(
            decode("%252e%252e%252f").as_deref().and_then(decode),
            Some("../".into())
        );
        assert_eq!(decode("/plain/path"), None);
        // Truncated and invalid escapes stay as they are.
        assert_eq!(decode("100%+x%zz%4"), Some("100% x%zz%4".into()));
    }

    #[test]
    fn decoding_sees_through_iis_overlong_and_full_width_forms() {
        assert_eq!(decode("/%u002e%u002E%u2215x"), Some("/../x".into()));
        assert_eq!(
            decode("/..%c0%af..%C0%AFx%c1%9c"),
            Some("/../../x\\".into())
        );
        assert_eq!(
            decode(r"/\xEF\xBC\x8E\xEF\xBC\x8E\xEF\xBC\x8Fx"),
            Some("/../x".into())
        );
        assert_eq!(decode("/\u{FF0E}\u{FF0E}\u{FF0F}x"), Some("/../x".into()));
        // Not escapes: left as they are.
        assert_eq!(decode("%uZZZZ%c0"), Some("%uZZZZ\u{FFFD}".into()));
        assert_eq!(decode("/caf\u{e9}"), None);
    }

    #[test]
    fn paths_normalize_as_servers_resolve_them() {
        let n = |p: &str| {
            let mut out = String::new();
            normalize_path(p, &mut out).then_some(out)
        };
        assert_eq!(n("//.env").as_deref(), Some("/.env"));
        assert_eq!(n("/.git/./config").as_deref(), Some("/.git/config"));
        assert_eq!(n("/a/.git//HEAD").as_deref(), Some("/a/.git/HEAD"));
        assert_eq!(n("/backup.sql;x").as_deref(), Some("/backup.sql"));
        assert_eq!(n("/.env\0.png").as_deref(), Some("/.env"));
        assert_eq!(n("/x/").as_deref(), None);
        assert_eq!(n("/plain/path.html"), None);
    }

    #[test]
    fn parts_split_at_the_first_question_mark() {
        let p = |s: &'static str, part| part_of(Cow::Borrowed(s), part).into_owned();
        assert_eq!(p("/a/b.php?x=1?y", Part::Path), "/a/b.php");
        assert_eq!(p("/a/b.php?x=1?y", Part::Query), "x=1?y");
        assert_eq!(p("/a/b.php?x=/c/d", Part::File), "b.php");
        assert_eq!(p("/a/b.php", Part::Query), "");
        assert_eq!(p("noslash", Part::File), "noslash");
        assert_eq!(p("/dir/", Part::File), "");
    }
}
