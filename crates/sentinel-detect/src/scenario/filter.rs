//! Compiled filters: the checks a scenario applies to each observation, cheapest first. Everything is
//! prepared at load — lists expanded, needles indexed or put in aho-corasick automata, regexes
//! compiled into sets — and the fields are read through [`views`](crate::scenario::views), computed at
//! most once per observation however many scenarios look at them.

use crate::scenario::data;
use crate::scenario::def::{Condition, Filter};
use crate::scenario::views::{Memo, ViewSpec, Views};

use regex::bytes::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use sentinel_core::Observed;

/// Regex programs may grow this large (the bad-agent word list is the biggest).
const REGEX_SIZE_LIMIT: usize = 32 << 20;

/// Where an [`Affixes`] needle must sit in the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Anchor {
    Whole,
    Start,
    End,
}

/// Needles compared at one end of the value (or with all of it), indexed by their byte at that end so
/// a value is compared only with the few needles that can match.
#[derive(Debug)]
struct Affixes {
    anchor: Anchor,
    cs: bool,
    needles: Vec<Box<[u8]>>,
    by_byte: Vec<Vec<u32>>,
    has_empty: bool,
}

impl Affixes {
    fn new(anchor: Anchor, cs: bool, list: Vec<String>) -> Self {
        let mut by_byte = vec![Vec::new(); 256];
        let mut has_empty = false;
        let mut needles = Vec::with_capacity(list.len());
        for n in list {
            let n = n.into_bytes().into_boxed_slice();
            let key = match anchor {
                Anchor::End => n.last(),
                Anchor::Start | Anchor::Whole => n.first(),
            };
            match key {
                None => has_empty = true,
                Some(&k) => {
                    let k = if cs { k } else { k.to_ascii_lowercase() };
                    by_byte[usize::from(k)].push(needles.len() as u32);
                }
            }
            needles.push(n);
        }
        Self {
            anchor,
            cs,
            needles,
            by_byte,
            has_empty,
        }
    }

    fn matches(&self, v: &[u8]) -> bool {
        if self.has_empty && self.anchor != Anchor::Whole {
            return true;
        }
        let key = match self.anchor {
            Anchor::End => v.last(),
            Anchor::Start | Anchor::Whole => v.first(),
        };
        let Some(&k) = key else {
            return self.has_empty;
        };
        let k = if self.cs { k } else { k.to_ascii_lowercase() };
        self.by_byte[usize::from(k)].iter().any(|&i| {
            let n = &self.needles[i as usize];
            let part = match self.anchor {
                Anchor::Whole if v.len() == n.len() => v,
                Anchor::Start if v.len() >= n.len() => &v[..n.len()],
                Anchor::End if v.len() >= n.len() => &v[v.len() - n.len()..],
                _ => return false,
            };
            eq(part, n, self.cs)
        })
    }
}

#[derive(Debug)]
enum Test {
    Equals(Affixes),
    /// The number of the condition's list among its view's `contains` lists.
    Contains(usize),
    StartsWith(Affixes),
    EndsWith(Affixes),
    Words(Regex),
    Regex(RegexSet),
    Present(bool),
}

#[derive(Debug)]
struct CompiledCondition {
    view: usize,
    test: Test,
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
            Test::Equals(Affixes::new(Anchor::Whole, cs, data::expand(&c.equals)))
        } else if !c.contains.is_empty() {
            Test::Contains(views.add_contains(view, data::expand(&c.contains), cs))
        } else if !c.starts_with.is_empty() {
            Test::StartsWith(Affixes::new(
                Anchor::Start,
                cs,
                data::expand(&c.starts_with),
            ))
        } else if !c.ends_with.is_empty() {
            Test::EndsWith(Affixes::new(Anchor::End, cs, data::expand(&c.ends_with)))
        } else if !c.words.is_empty() {
            let alts: Vec<String> = data::expand(&c.words)
                .iter()
                .map(|w| regex::escape(w))
                .collect();
            let re = RegexBuilder::new(&format!(r"(?-u:\b)(?:{})(?-u:\b)", alts.join("|")))
                .case_insensitive(!cs)
                .unicode(false)
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| format!("`{}` words: {e}", c.field))?;
            Test::Words(re)
        } else if !c.regex.is_empty() {
            // Byte regexes without Unicode classes: `[^/]` is one byte, so the lazy DFA stays small.
            let set = RegexSetBuilder::new(data::expand(&c.regex))
                .case_insensitive(!cs)
                .unicode(false)
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
            negate: c.negate,
        })
    }

    fn matches<O: Observed + ?Sized>(&self, memo: &mut Memo<'_, '_, O>, views: &Views) -> bool {
        if let Test::Contains(list) = self.test {
            return memo.get(self.view, views).is_some()
                && memo.contains(self.view, list, views) != self.negate;
        }

        let forms = memo.get(self.view, views);
        if let Test::Present(want) = self.test {
            return forms.is_some() == want;
        }
        let Some(forms) = forms else {
            return false;
        };
        let hit = forms.iter().any(|v| match &self.test {
            Test::Equals(a) | Test::StartsWith(a) | Test::EndsWith(a) => a.matches(v.as_bytes()),
            Test::Contains(_) => false,
            Test::Words(re) => re.is_match(v.as_bytes()),
            Test::Regex(set) => set.is_match(v.as_bytes()),
            Test::Present(_) => false,
        });
        hit != self.negate
    }
}

/// A filter ready to run: kinds first (the cheapest and most selective check).
#[derive(Debug)]
pub(crate) struct CompiledFilter {
    kinds: Vec<String>,
    /// The number of its service list in [`Views`], if it has one.
    services: Option<usize>,
    /// Each with its number in the per-observation cache (identical conditions share one).
    conditions: Vec<(usize, CompiledCondition)>,
    any_of: Vec<CompiledFilter>,
}

impl CompiledFilter {
    pub(crate) fn new(f: &Filter, views: &mut Views) -> Result<Self, String> {
        // `field_in` and `field_contains` are conditions like the others (exact and case-sensitive,
        // or substrings ignoring case), so they share the per-observation cache.
        let mut all: Vec<Condition> = Vec::new();
        for (k, v) in &f.field_in {
            all.push(Condition {
                field: k.clone(),
                case_sensitive: true,
                equals: v.clone(),
                ..Condition::default()
            });
        }
        for (k, v) in &f.field_contains {
            all.push(Condition {
                field: k.clone(),
                contains: v.clone(),
                ..Condition::default()
            });
        }
        all.extend(f.conditions.iter().cloned());
        let conditions = all
            .iter()
            .map(|c| Ok((views.condition_id(c), CompiledCondition::new(c, views)?)))
            .collect::<Result<_, String>>()?;
        let services = (!f.service.is_empty()).then(|| views.service_list(&f.service));
        Ok(Self {
            kinds: f.kind.clone(),
            services,
            conditions,
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
        memo: &mut Memo<'_, '_, O>,
        views: &Views,
    ) -> bool {
        self.kind_matches(memo.o.kind()) && self.rest_matches(memo, views)
    }

    /// Whether everything but the kind passes.
    pub(crate) fn rest_matches<O: Observed + ?Sized>(
        &self,
        memo: &mut Memo<'_, '_, O>,
        views: &Views,
    ) -> bool {
        if let Some(list) = self.services {
            if !memo.service_in(list, views) {
                return false;
            }
        }
        let all = self
            .conditions
            .iter()
            .all(|(id, c)| match memo.cached(*id) {
                Some(v) => v,
                None => {
                    let v = c.matches(memo, views);
                    memo.cache(*id, v);
                    v
                }
            });
        if !all {
            return false;
        }
        self.any_of.is_empty() || self.any_of.iter().any(|f| f.matches(memo, views))
    }
}
