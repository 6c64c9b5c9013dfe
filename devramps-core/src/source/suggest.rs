//! "Did you mean" for many words against one long list of candidates (every unknown entry of
//! a step list against every step name and id), at a cost that does not grow with the list
//! for each word: [`Suggestions`] gives exactly what [`suggest`] gives, but only compares the
//! word with the candidates an index says could be close enough.
//!
//! The index: [`suggest`] accepts a candidate at Damerau-Levenshtein distance at most 3 (of
//! the lowercase strings). An edit script of cost `d` turns into at most `d` deletions from
//! each string that leave the same string `s` (a substitution deletes the character on both
//! sides; an insertion or deletion deletes one character on one side; a transposition block
//! of cost `c` keeps one of its crossed characters, deleting at most `c` on each side). So a
//! candidate within distance 3 shares with the word a key: a string obtained by deleting at
//! most 3 characters from the first [`PREFIX`] characters, cut to [`PREFIX`] - 3 characters
//! (both cut prefixes are the same prefix of `s`). Keys are stored as hashes: a collision only
//! adds a candidate to compare, never loses one.

use std::cell::OnceCell;
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use super::diagnostic::suggest;

/// The largest distance [`suggest`] accepts.
const MAX_DISTANCE: usize = 3;
/// How many leading characters the keys are taken from.
const PREFIX: usize = 8;
/// Below this many candidates, comparing with each is cheaper than building the index.
const INDEX_FROM: usize = 64;

/// Candidates for "did you mean", indexed on first use when there are many.
pub(crate) struct Suggestions<'a> {
    candidates: Vec<&'a str>,
    index: OnceCell<HashMap<u64, Vec<u32>>>,
}

impl<'a> Suggestions<'a> {
    /// Suggestions among `candidates` (their order breaks ties, as in [`suggest`]).
    pub(crate) fn new(candidates: Vec<&'a str>) -> Self {
        Suggestions {
            candidates,
            index: OnceCell::new(),
        }
    }

    /// What [`suggest`] gives for `word` among the candidates.
    pub(crate) fn suggest(&self, word: &str) -> Option<&'a str> {
        if self.candidates.len() < INDEX_FROM {
            return suggest(word, self.candidates.iter().copied());
        }
        let index = self.index.get_or_init(|| {
            let mut index: HashMap<u64, Vec<u32>> = HashMap::new();
            for (i, c) in self.candidates.iter().enumerate() {
                let Ok(i) = u32::try_from(i) else { break };
                for key in keys(c) {
                    index.entry(key).or_default().push(i);
                }
            }
            index
        });
        let mut near: Vec<u32> = keys(word)
            .into_iter()
            .filter_map(|key| index.get(&key))
            .flatten()
            .copied()
            .collect();
        near.sort_unstable();
        near.dedup();
        suggest(word, near.into_iter().map(|i| self.candidates[i as usize]))
    }
}

/// The keys of `text`: every string obtained by deleting at most [`MAX_DISTANCE`] characters
/// from its first [`PREFIX`] lowercase characters, cut to `PREFIX - MAX_DISTANCE` characters,
/// hashed.
fn keys(text: &str) -> HashSet<u64> {
    let head: Vec<char> = text
        .chars()
        .take(PREFIX)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let mut out = HashSet::new();
    let mut kept = Vec::with_capacity(head.len());
    deletions(&head, 0, MAX_DISTANCE, &mut kept, &mut out);
    out
}

/// Adds to `out` the hash of every way to keep the characters of `head[at..]` after `kept`
/// with at most `deletions` of them deleted, cut to `PREFIX - MAX_DISTANCE` characters.
fn deletions(
    head: &[char],
    at: usize,
    deletions_left: usize,
    kept: &mut Vec<char>,
    out: &mut HashSet<u64>,
) {
    let cut = PREFIX - MAX_DISTANCE;
    if at == head.len() || kept.len() == cut {
        // Cut: what follows no longer changes the key.
        let mut hasher = DefaultHasher::new();
        kept[..kept.len().min(cut)].hash(&mut hasher);
        out.insert(hasher.finish());
        return;
    }
    kept.push(head[at]);
    deletions(head, at + 1, deletions_left, kept, out);
    kept.pop();
    if deletions_left > 0 {
        deletions(head, at + 1, deletions_left - 1, kept, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names close to each other and to the words below, many enough to use the index.
    fn names() -> Vec<String> {
        let mut names: Vec<String> = (0..300).map(|i| format!("Step {i}")).collect();
        names.extend(
            [
                "deploy",
                "Deploy-Frontend",
                "integration tests",
                "a",
                "ab",
                "Ba",
            ]
            .map(String::from),
        );
        names.extend((0..50).map(|i| format!("deploy-backend-{i}")));
        names
    }

    #[test]
    fn the_index_finds_what_comparing_with_every_candidate_finds() {
        let names = names();
        let candidates: Vec<&str> = names.iter().map(String::as_str).collect();
        let suggestions = Suggestions::new(candidates.clone());
        let words = [
            "step 12",
            "Stpe 12",
            "step12",
            "xstep 12",
            "Step 1234",
            "stepp 299",
            "depoly",
            "deploy-frontned",
            "Deploy-Backend-7",
            "eploy-backend-4x",
            "integartion tests",
            "intgration test",
            "b",
            "ab",
            "nope-3",
            "ste",
            "s 12",
            "",
            "STEP 7",
            "tsep 7",
        ];
        for word in words {
            assert_eq!(
                suggestions.suggest(word),
                suggest(word, candidates.iter().copied()),
                "{word}"
            );
        }
        // And every candidate, with one or two characters changed.
        for name in &names {
            for word in [
                format!("{name}x"),
                name.replacen(' ', "", 1),
                format!("x{name}"),
            ] {
                assert_eq!(
                    suggestions.suggest(&word),
                    suggest(&word, candidates.iter().copied()),
                    "{word}"
                );
            }
        }
    }
}
