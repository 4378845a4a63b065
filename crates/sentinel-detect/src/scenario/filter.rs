//! Compiled filters: the checks a scenario applies to each observation, cheapest first. Everything is
//! prepared at load — lists expanded, needles put in aho-corasick automata, regexes compiled into sets —
//! and each view of a field (a part, decoded or not) is computed at most once per observation, however
//! many scenarios look at it.

use crate::scenario::data;
use crate::scenario::def::{Condition, Filter, Part};
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use sentinel_core::Observed;
use std::borrow::Cow;

/// Regex programs may grow this large (the bad-agent word list is the biggest).
const REGEX_SIZE_LIMIT: usize = 32 << 20;

/// A way of looking at a field: which part of it, and whether decoded forms count too.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ViewSpec {
    pub(crate) field: String,
    pub(crate) part: Part,
    pub(crate) decode: bool,
}

/// Every view the scenarios use, numbered, so an observation's views are computed once.
#[derive(Debug, Default)]
pub(crate) struct Views {
    specs: Vec<ViewSpec>,
}

impl Views {
    pub(crate) fn id(&mut self, spec: ViewSpec) -> usize {
        if let Some(i) = self.specs.iter().position(|s| *s == spec) {
            return i;
        }
        self.specs.push(spec);
        self.specs.len() - 1
    }

    pub(crate) fn len(&self) -> usize {
        self.specs.len()
    }
}

/// The views of one observation, computed on first use.
pub(crate) struct Memo<'a, O: Observed + ?Sized> {
    o: &'a O,
    /// Per view: not yet computed (`None`), field absent (`Some(None)`), or its forms.
    slots: Vec<Option<Option<Vec<Cow<'a, str>>>>>,
}

impl<'a, O: Observed + ?Sized> Memo<'a, O> {
    pub(crate) fn new(o: &'a O, views: usize) -> Self {
        Self {
            o,
            slots: vec![None; views],
        }
    }

    /// The forms of view `id` (the value first, then its decoded forms), or `None` if the field is absent.
    pub(crate) fn get(&mut self, id: usize, views: &Views) -> Option<&[Cow<'a, str>]> {
        let spec = views.specs.get(id)?;
        let o = self.o;
        let slot = self.slots.get_mut(id)?;
        slot.get_or_insert_with(|| {
            let v = o.field(&spec.field)?;
            let v = part_of(v, spec.part);
            let mut forms = Vec::with_capacity(if spec.decode { 3 } else { 1 });
            if spec.decode {
                let once = decode(&v);
                let twice = once.as_deref().and_then(decode);
                forms.push(v);
                if let Some(once) = once {
                    forms.push(Cow::Owned(once));
                }
                if let Some(twice) = twice {
                    forms.push(Cow::Owned(twice));
                }
            } else {
                forms.push(v);
            }
            Some(forms)
        })
        .as_deref()
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

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// One round of decoding: `%HH` and nginx's `\xHH` escapes to bytes, `+` to a space. `None` when there
/// was nothing to decode. Invalid UTF-8 in the result is replaced, never refused.
pub(crate) fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if !b.iter().any(|&c| c == b'%' || c == b'+' || c == b'\\') {
        return None;
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let mut changed = false;
    while i < b.len() {
        let c = b[i];
        let esc = match c {
            b'%' if i + 2 < b.len() => {
                hex(b[i + 1]).zip(hex(b[i + 2])).map(|(h, l)| (h << 4 | l, 3))
            }
            b'\\' if i + 3 < b.len() && (b[i + 1] == b'x' || b[i + 1] == b'X') => {
                hex(b[i + 2]).zip(hex(b[i + 3])).map(|(h, l)| (h << 4 | l, 4))
            }
            _ => None,
        };
        if let Some((byte, len)) = esc {
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
    changed.then(|| String::from_utf8_lossy(&out).into_owned())
}

#[derive(Debug)]
enum Test {
    Equals(Vec<String>),
    Contains(AhoCorasick),
    StartsWith(Vec<String>),
    EndsWith(Vec<String>),
    Words(Regex),
    Regex(RegexSet),
    Present(bool),
}

#[derive(Debug)]
struct CompiledCondition {
    view: usize,
    test: Test,
    case_sensitive: bool,
    negate: bool,
}

fn eq(a: &[u8], b: &[u8], cs: bool) -> bool {
    if cs {
        a == b
    } else {
        a.eq_ignore_ascii_case(b)
    }
}

impl CompiledCondition {
    fn new(c: &Condition, views: &mut Views) -> Result<Self, String> {
        let view = views.id(ViewSpec {
            field: c.field.clone(),
            part: c.part,
            decode: c.decode,
        });
        let cs = c.case_sensitive;
        let test = if !c.equals.is_empty() {
            Test::Equals(data::expand(&c.equals))
        } else if !c.contains.is_empty() {
            let needles = data::expand(&c.contains);
            let ac = AhoCorasickBuilder::new()
                .ascii_case_insensitive(!cs)
                .match_kind(MatchKind::LeftmostFirst)
                .build(&needles)
                .map_err(|e| format!("`{}`: {e}", c.field))?;
            Test::Contains(ac)
        } else if !c.starts_with.is_empty() {
            Test::StartsWith(data::expand(&c.starts_with))
        } else if !c.ends_with.is_empty() {
            Test::EndsWith(data::expand(&c.ends_with))
        } else if !c.words.is_empty() {
            let alts: Vec<String> = data::expand(&c.words)
                .iter()
                .map(|w| regex::escape(w))
                .collect();
            let re = RegexBuilder::new(&format!(r"(?-u:\b)(?:{})(?-u:\b)", alts.join("|")))
                .case_insensitive(!cs)
                .unicode(false)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| format!("`{}` words: {e}", c.field))?;
            Test::Words(re)
        } else if !c.regex.is_empty() {
            let set = RegexSetBuilder::new(data::expand(&c.regex))
                .case_insensitive(!cs)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| format!("`{}` regex: {e}", c.field))?;
            Test::Regex(set)
        } else if let Some(p) = c.present {
            Test::Present(p)
        } else {
            return Err(format!("`{}`: no test given", c.field));
        };
        Ok(Self {
            view,
            test,
            case_sensitive: cs,
            negate: c.negate,
        })
    }

    fn matches<O: Observed + ?Sized>(&self, memo: &mut Memo<'_, O>, views: &Views) -> bool {
        let forms = memo.get(self.view, views);
        if let Test::Present(want) = self.test {
            return forms.is_some() == want;
        }
        let Some(forms) = forms else {
            return false;
        };
        let cs = self.case_sensitive;
        let hit = forms.iter().any(|v| {
            let v = v.as_bytes();
            match &self.test {
                Test::Equals(list) => list.iter().any(|n| eq(v, n.as_bytes(), cs)),
                Test::Contains(ac) => ac.is_match(v),
                Test::StartsWith(list) => list.iter().any(|n| {
                    let n = n.as_bytes();
                    v.len() >= n.len() && eq(&v[..n.len()], n, cs)
                }),
                Test::EndsWith(list) => list.iter().any(|n| {
                    let n = n.as_bytes();
                    v.len() >= n.len() && eq(&v[v.len() - n.len()..], n, cs)
                }),
                Test::Words(re) => std::str::from_utf8(v).is_ok_and(|s| re.is_match(s)),
                Test::Regex(set) => std::str::from_utf8(v).is_ok_and(|s| set.is_match(s)),
                Test::Present(_) => false,
            }
        });
        hit != self.negate
    }
}

/// A filter ready to run: kinds first (the cheapest and most selective check).
#[derive(Debug)]
pub(crate) struct CompiledFilter {
    kinds: Vec<String>,
    services: Vec<String>,
    field_in: Vec<(String, Vec<String>)>,
    field_contains: Vec<(String, AhoCorasick)>,
    conditions: Vec<CompiledCondition>,
    any_of: Vec<CompiledFilter>,
}

impl CompiledFilter {
    pub(crate) fn new(f: &Filter, views: &mut Views) -> Result<Self, String> {
        let mut field_contains = Vec::new();
        for (k, v) in &f.field_contains {
            let ac = AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .build(data::expand(v))
                .map_err(|e| format!("`field_contains.{k}`: {e}"))?;
            field_contains.push((k.clone(), ac));
        }
        Ok(Self {
            kinds: f.kind.clone(),
            services: f.service.clone(),
            field_in: f
                .field_in
                .iter()
                .map(|(k, v)| (k.clone(), data::expand(v)))
                .collect(),
            field_contains,
            conditions: f
                .conditions
                .iter()
                .map(|c| CompiledCondition::new(c, views))
                .collect::<Result<_, _>>()?,
            any_of: f
                .any_of
                .iter()
                .map(|s| CompiledFilter::new(s, views))
                .collect::<Result<_, _>>()?,
        })
    }

    /// The kinds this filter accepts (empty: any).
    pub(crate) fn kinds(&self) -> &[String] {
        &self.kinds
    }

    /// Whether the kind passes.
    pub(crate) fn kind_matches(&self, kind: &str) -> bool {
        self.kinds.is_empty() || self.kinds.iter().any(|k| k == kind)
    }

    /// Whether the whole filter passes.
    pub(crate) fn matches<O: Observed + ?Sized>(
        &self,
        memo: &mut Memo<'_, O>,
        views: &Views,
    ) -> bool {
        self.kind_matches(memo.o.kind()) && self.rest_matches(memo, views)
    }

    /// Whether everything but the kind passes.
    pub(crate) fn rest_matches<O: Observed + ?Sized>(
        &self,
        memo: &mut Memo<'_, O>,
        views: &Views,
    ) -> bool {
        let o = memo.o;
        if !self.services.is_empty() {
            let svc = o.service();
            let ok = self.services.iter().any(|s| {
                svc == s
                    || (svc.len() > s.len()
                        && svc.starts_with(s.as_str())
                        && svc.as_bytes()[s.len()] == b'-')
            });
            if !ok {
                return false;
            }
        }
        for (field, allowed) in &self.field_in {
            match o.field(field) {
                Some(v) if allowed.iter().any(|a| a == v.as_ref()) => {}
                _ => return false,
            }
        }
        for (field, ac) in &self.field_contains {
            match o.field(field) {
                Some(v) if ac.is_match(v.as_ref()) => {}
                _ => return false,
            }
        }
        if !self.conditions.iter().all(|c| c.matches(memo, views)) {
            return false;
        }
        self.any_of.is_empty() || self.any_of.iter().any(|f| f.matches(memo, views))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_undoes_percent_nginx_and_plus_escapes() {
        assert_eq!(decode("/a%2e%2E/b"), Some("/a../b".into()));
        assert_eq!(decode("q=O%27Brien+and+co"), Some("q=O'Brien and co".into()));
        assert_eq!(decode(r"/index.php?s=/index/\x5Cthink"), Some(r"/index.php?s=/index/\think".into()));
        assert_eq!(decode("%252e%252e%252f").as_deref().and_then(decode), Some("../".into()));
        assert_eq!(decode("/plain/path"), None);
        // Truncated and invalid escapes stay as they are.
        assert_eq!(decode("100%+x%zz%4"), Some("100% x%zz%4".into()));
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
