//! Rebuild-or-reuse decisions (reference 3.3): which artifacts a set of changed paths touches.
//!
//! Entries of `rebuild_when_changed` match by whole path components: `/services/api` covers
//! `/services/api` itself and everything beneath it, never `/services/api-gateway/x.rs`. Entries
//! with `*`, `?`, `[` or `{` are globs (`*` and `?` do not cross `/`, `**` does); a glob covers
//! the paths it matches and everything beneath them. All entries of all artifacts are compiled
//! once into a component trie; globs hang at the node of their literal leading components, so a
//! changed path is tested only against the globs of the directories it lies in. Globs of the
//! common shapes `<dir>/*.ext` and `<dir>/**/*.ext` are decided by comparing text, without
//! compiling them. Deciding for many artifacts is one pass over the changed paths.

use std::collections::HashMap;

use std::hash::{BuildHasherDefault, Hasher};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// FNV-1a: trie lookups hash short path components, where SipHash's setup dominates.
#[derive(Clone, Copy, Debug)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// The trie node for `components`, created on the way.
fn descend(nodes: &mut Vec<TrieNode>, components: &[&str]) -> usize {
    let mut node = 0;
    for component in components {
        node = match nodes[node].children.get(*component) {
            Some(&child) => child,
            None => {
                nodes.push(TrieNode::default());
                let child = nodes.len() - 1;
                nodes[node].children.insert((*component).to_owned(), child);
                child
            }
        };
    }
    node
}
use serde::Serialize;

use crate::pipeline::{Artifact, Code, Diagnostic};

/// Whether an artifact is built for a deployment or the previous build is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Decision {
    /// Build it.
    Rebuild,
    /// Use the last successful build.
    Reuse,
}

/// Why an artifact is rebuilt or reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RebuildReason {
    /// It was never built successfully.
    NoPreviousBuild,
    /// It has no `rebuild_when_changed`, so every deployment builds it.
    NoRebuildWhenChanged,
    /// The changes since its last build are not known (for example a commit without parent).
    ChangesUnknown,
    /// A changed path falls under one of its entries.
    PathsChanged,
    /// No changed path falls under its entries.
    Unchanged,
}

/// The compiled `rebuild_when_changed` entries of a list of artifacts.
#[derive(Clone, Debug)]
pub struct RebuildMatcher {
    nodes: Vec<TrieNode>,
    artifacts: usize,
}

/// A node of the component trie: the artifacts whose plain entry ends here, and the globs whose
/// literal leading components lead here (only paths under that prefix are tested against them).
#[derive(Clone, Debug, Default)]
struct TrieNode {
    children: HashMap<String, usize, BuildHasherDefault<Fnv>>,
    owners: Vec<usize>,
    /// Artifacts with an entry `<this node>/*`: every path strictly beneath matches.
    strict_owners: Vec<usize>,
    /// The globs `<prefix>/*<suffix>` and `<prefix>/**/*<suffix>` hung here, matched without
    /// a glob set, and for each the artifacts that have it.
    suffix_globs: Vec<(SuffixGlob, Vec<usize>)>,
    /// The other globs hung here, and for each the artifacts that have it.
    globs: Option<(GlobSet, Vec<Vec<usize>>)>,
    /// The globs while the matcher is built: each distinct glob once, with its artifacts.
    pending: Vec<(globset::Glob, Vec<usize>)>,
}

impl TrieNode {
    /// Hangs `glob` of artifact `owner` here; artifacts with the same glob share it.
    fn hang(&mut self, owner: usize, glob: globset::Glob) {
        match self.pending.iter_mut().find(|(g, _)| *g == glob) {
            Some((_, owners)) if owners.contains(&owner) => {}
            Some((_, owners)) => owners.push(owner),
            None => self.pending.push((glob, vec![owner])),
        }
    }
}

/// A glob whose last component is `*` and a literal suffix, after a literal prefix and maybe a
/// `**`: `/services/api/**/*.rs`, `/proto/*.proto`. What it covers (the paths it matches and
/// everything beneath them) is decided by comparing text, without compiling a glob: a path under
/// `<prefix>/` whose first component there (any component there, after `**`) ends with the
/// suffix.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SuffixGlob {
    /// The entry up to the `/` before the glob components, as written.
    prefix: String,
    /// What the last component ends with.
    suffix: String,
    /// Whether `**` comes before the last component.
    deep: bool,
}

impl SuffixGlob {
    /// The suffix glob that `path` (an entry without trailing `/`) is, if it is one.
    fn of(path: &str) -> Option<Self> {
        let plain = |s: &str| !s.contains(['*', '?', '[', ']', '{', '}', '\\']);
        let (head, suffix) = path.rsplit_once("/*")?;
        let (prefix, deep) = match head.strip_suffix("/**") {
            Some(prefix) => (prefix, true),
            None => (head, false),
        };
        (!suffix.is_empty() && !suffix.contains('/') && plain(suffix) && plain(prefix)).then(|| {
            SuffixGlob {
                prefix: prefix.to_owned(),
                suffix: suffix.to_owned(),
                deep,
            }
        })
    }

    /// Whether the glob covers `path`.
    fn covers(&self, path: &str) -> bool {
        let Some(rest) = path
            .strip_prefix(self.prefix.as_str())
            .and_then(|r| r.strip_prefix('/'))
        else {
            return false;
        };
        let mut components = rest.split('/');
        if self.deep {
            components.any(|c| c.ends_with(self.suffix.as_str()))
        } else {
            components
                .next()
                .is_some_and(|c| c.ends_with(self.suffix.as_str()))
        }
    }
}

/// Whether an entry is a glob rather than a plain path.
pub fn is_glob(entry: &str) -> bool {
    entry.contains(['*', '?', '[', '{'])
}

impl RebuildMatcher {
    /// Compiles the entries of `artifacts` (index `i` of the result is `artifacts[i]`). A
    /// malformed glob is an error naming the artifact and the entry.
    pub fn new(artifacts: &[Artifact]) -> Result<Self, Vec<Diagnostic>> {
        let mut nodes = vec![TrieNode::default()];
        let mut errors = Vec::new();
        for (index, artifact) in artifacts.iter().enumerate() {
            for entry in artifact.rebuild_when_changed.iter().flatten() {
                let path = entry.value.trim_end_matches('/');
                let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
                // Plain entries end at their last component; globs hang at their literal prefix.
                let literal = components.iter().take_while(|c| !is_glob(c)).count();
                let node = descend(&mut nodes, &components[..literal]);
                // `<prefix>/**` covers the prefix's subtree like a plain entry, and `<prefix>/*`
                // (with everything beneath it) every path strictly under the prefix: neither
                // needs a glob match.
                let rest = &components[literal..];
                if literal == components.len() || rest == ["**"] {
                    if !nodes[node].owners.contains(&index) {
                        nodes[node].owners.push(index);
                    }
                    continue;
                }
                if rest == ["*"] {
                    if !nodes[node].strict_owners.contains(&index) {
                        nodes[node].strict_owners.push(index);
                    }
                    continue;
                }
                if let Some(glob) = SuffixGlob::of(path) {
                    let globs = &mut nodes[node].suffix_globs;
                    match globs.iter_mut().find(|(g, _)| *g == glob) {
                        Some((_, owners)) if owners.contains(&index) => {}
                        Some((_, owners)) => owners.push(index),
                        None => globs.push((glob, vec![index])),
                    }
                    continue;
                }
                for pattern in [path.to_owned(), format!("{path}/**")] {
                    match GlobBuilder::new(&pattern).literal_separator(true).build() {
                        Ok(glob) => nodes[node].hang(index, glob),
                        Err(e) => {
                            errors.push(Diagnostic::new(
                                Code::InvalidRepoPath,
                                entry.span,
                                format!(
                                    "`rebuild_when_changed` entry `{}` of artifact `{}` is not a valid glob: {}",
                                    entry.value,
                                    artifact.name.value,
                                    e.kind()
                                ),
                            ));
                            break;
                        }
                    }
                }
            }
        }
        for node in &mut nodes {
            if node.pending.is_empty() {
                continue;
            }
            let mut set = GlobSetBuilder::new();
            let mut owners = Vec::with_capacity(node.pending.len());
            for (glob, owners_of_glob) in node.pending.drain(..) {
                set.add(glob);
                owners.push(owners_of_glob);
            }
            match set.build() {
                Ok(set) => node.globs = Some((set, owners)),
                Err(e) => errors.push(Diagnostic::new(
                    Code::InvalidRepoPath,
                    crate::pipeline::Span::UNKNOWN,
                    format!("invalid glob: {e}"),
                )),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(RebuildMatcher {
            nodes,
            artifacts: artifacts.len(),
        })
    }

    /// For each artifact, the changed paths that fall under its entries, in the order given.
    /// One pass over `changed`; each path costs a walk of its components plus one glob-set
    /// match, whatever the number of artifacts.
    pub fn matches<'p, S: AsRef<str>>(&self, changed: &'p [S]) -> Vec<Vec<&'p str>> {
        let mut out: Vec<Vec<&'p str>> = vec![Vec::new(); self.artifacts];
        // The last path index recorded per artifact, so a path is listed once per artifact.
        let mut last: Vec<usize> = vec![usize::MAX; self.artifacts];
        let mut hits = Vec::new();
        for (p, path) in changed.iter().enumerate() {
            let path = path.as_ref();
            let mut record = |owner: usize, out: &mut Vec<Vec<&'p str>>| {
                if last[owner] != p {
                    last[owner] = p;
                    out[owner].push(path);
                }
            };
            let mut node = 0;
            let mut components = path.split('/').filter(|c| !c.is_empty());
            loop {
                let here = &self.nodes[node];
                for &owner in &here.owners {
                    record(owner, &mut out);
                }
                for (glob, owners) in &here.suffix_globs {
                    if glob.covers(path) {
                        for &owner in owners {
                            record(owner, &mut out);
                        }
                    }
                }
                if let Some((set, owners)) = &here.globs {
                    set.matches_into(path, &mut hits);
                    for &g in &hits {
                        for &owner in &owners[g] {
                            record(owner, &mut out);
                        }
                    }
                }
                let Some(component) = components.next() else {
                    break;
                };
                for &owner in &here.strict_owners {
                    record(owner, &mut out);
                }
                match here.children.get(component) {
                    Some(&child) => node = child,
                    None => break,
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::parse;

    fn artifacts(entries: &[&[&str]]) -> Vec<Artifact> {
        let mut yaml = String::from(
            "version: \"1.0.0\"\npipeline:\n  cloud_provider: AWS\n  pipeline_updates_require_approval: NEVER\n  stages: [{name: s, account_id: \"111111111111\", region: us-east-1}]\n  steps: [{name: A, type: \"CUSTOM:A\"}]\n  artifacts:\n",
        );
        for (i, e) in entries.iter().enumerate() {
            let list: Vec<String> = e.iter().map(|p| format!("\"{p}\"")).collect();
            yaml.push_str(&format!(
                "    A{i}:\n      type: DEVRAMPS:BUNDLE:BUILD\n      rebuild_when_changed: [{}]\n      params: {{build_commands: make, file_path: /a.zip}}\n",
                list.join(", ")
            ));
        }
        parse(&yaml).expect("valid").artifacts
    }

    #[test]
    fn scenario_17_components_not_prefixes() {
        let a = artifacts(&[&["/services/api", "/Dockerfile"]]);
        let m = RebuildMatcher::new(&a).expect("compiles");
        let hit = |p: &str| !m.matches(&[p])[0].is_empty();
        assert!(hit("/services/api/src/main.ts"));
        assert!(hit("/services/api"));
        assert!(hit("/Dockerfile"));
        assert!(!hit("/services/api-gateway/x.ts"));
        assert!(!hit("/docs/readme.md"));
        assert!(!hit("/Dockerfile.dev"));
    }

    #[test]
    fn globs_do_not_cross_separators_unless_double_star() {
        let a = artifacts(&[&["/services/*/src"], &["/web/**/*.ts"], &["/*.json"]]);
        let m = RebuildMatcher::new(&a).expect("compiles");
        let r = m.matches(&[
            "/services/a/src/x.rs",
            "/services/a/b/src/x.rs",
            "/web/a/b/c.ts",
            "/package.json",
            "/x/package.json",
        ]);
        assert_eq!(r[0], ["/services/a/src/x.rs"]);
        assert_eq!(r[1], ["/web/a/b/c.ts"]);
        assert_eq!(r[2], ["/package.json"]);
    }

    #[test]
    fn trailing_star_globs_need_no_glob_match_and_keep_their_meaning() {
        let a = artifacts(&[&["/lib/*"], &["/lib/**"], &["/lib/*.rs"]]);
        let m = RebuildMatcher::new(&a).expect("compiles");
        let r = m.matches(&["/lib", "/lib/a.rs", "/lib/x/y.txt", "/library/a.rs"]);
        assert_eq!(
            r[0],
            ["/lib/a.rs", "/lib/x/y.txt"],
            "`*` covers what is under /lib"
        );
        assert_eq!(
            r[1],
            ["/lib", "/lib/a.rs", "/lib/x/y.txt"],
            "`**` covers the subtree"
        );
        assert_eq!(r[2], ["/lib/a.rs"]);
    }

    #[test]
    fn suffix_globs_cover_what_the_glob_sets_cover() {
        let patterns = [
            "/services/api/**/*.rs",
            "/proto/*.proto",
            "/*.json",
            "/a//b/*.rs",
            "/web/**/*.test.ts",
        ];
        let paths = [
            "/services/api/main.rs",
            "/services/api/src/deep/x.rs",
            "/services/api/.rs",
            "/services/api/x.rs/inner.txt",
            "/services/api/x.rsx",
            "/services/api/src.rs.bak/y",
            "/services/api",
            "/services/api/",
            "/services/api-gw/x.rs",
            "/services/apix.rs",
            "//services/api/x.rs",
            "/services//api/x.rs",
            "/services/api//x.rs",
            "/services/api/x.rs/",
            "/proto/a.proto",
            "/proto/a/b.proto",
            "/proto/a.proto/b",
            "/proto/.proto",
            "/proto",
            "/package.json",
            "//package.json",
            "/x/package.json",
            "/package.json/x",
            "/a//b/x.rs",
            "/a/b/x.rs",
            "/web/a/b.test.ts",
            "/web/b.ts",
            "/web/x.test.ts/y",
        ];
        for pattern in patterns {
            let fast = SuffixGlob::of(pattern).expect("a suffix glob");
            let mut set = GlobSetBuilder::new();
            for p in [pattern.to_owned(), format!("{pattern}/**")] {
                let glob = GlobBuilder::new(&p).literal_separator(true).build();
                set.add(glob.expect("valid"));
            }
            let set = set.build().expect("builds");
            for path in paths {
                assert_eq!(fast.covers(path), set.is_match(path), "{pattern} on {path}");
            }
        }
        for not_suffix in [
            "/a/*",
            "/a/**",
            "/a/b*/*.rs",
            "/a/**/x*.rs",
            "/a/*.{rs,ts}",
            "/a/*.d/b",
        ] {
            assert_eq!(SuffixGlob::of(not_suffix), None, "{not_suffix}");
        }
    }

    #[test]
    fn a_path_is_listed_once_per_artifact() {
        let a = artifacts(&[&["/a", "/a/b", "/a/**"]]);
        let m = RebuildMatcher::new(&a).expect("compiles");
        assert_eq!(m.matches(&["/a/b/c"])[0], ["/a/b/c"]);
    }
}
