//! Random edits of a text, for the never-panic property tests of the parsers: a pipeline file
//! (`devramps-core/tests/no_panic.rs`) and a scenario file (`devramps-sim/tests/no_panic.rs`,
//! which includes this file by path). Every edit works on character boundaries or whole lines,
//! so the result stays valid UTF-8.

use proptest::prelude::*;
use proptest::sample::{Index, select};

/// Text inserted by [`Mutation::Insert`]: YAML indicators, expression fragments, anchors,
/// tags, whitespace and non-ASCII characters.
pub(crate) const TOKENS: &[&str] = &[
    ": ",
    "- ",
    "{",
    "}",
    "[",
    "]",
    ",",
    "${{",
    "}}",
    "${{ vars.nope }}",
    "${{ steps. }}",
    "${{ stage.artifacts[\"",
    "$${{",
    "&a ",
    "*a",
    "<<: *a\n",
    "!!binary ",
    "!!str ",
    "!custom ",
    "\t",
    "\n",
    "\r\n",
    "#",
    " #",
    "\"",
    "'",
    "\\",
    "|",
    "|-\n",
    ">",
    "? ",
    "---\n",
    "...\n",
    "%YAML 1.2\n",
    "~",
    "null",
    "é",
    "日本",
    "💥",
    "\u{feff}",
    "\u{0}",
    "  ",
];

/// One edit of a text. Every edit works on character boundaries or whole lines, so the result
/// stays valid UTF-8.
#[derive(Clone, Debug)]
pub(crate) enum Mutation {
    /// Deletes up to this many characters from a position.
    Delete(Index, usize),
    /// Writes a line twice.
    DuplicateLine(Index),
    /// Exchanges two lines.
    SwapLines(Index, Index),
    /// Inserts a token at a position.
    Insert(Index, &'static str),
    /// Adds (positive) or removes (negative) leading spaces of a line.
    Reindent(Index, i8),
    /// Replaces a line's indentation with a tab.
    TabIndent(Index),
    /// Cuts the text at a position.
    Truncate(Index),
    /// Replaces one character.
    Replace(Index, char),
}

/// One random edit; [`Mutation::Insert`] picks from `tokens`.
pub(crate) fn mutation(tokens: Vec<&'static str>) -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<Index>(), 1usize..40).prop_map(|(i, n)| Mutation::Delete(i, n)),
        2 => any::<Index>().prop_map(Mutation::DuplicateLine),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        4 => (any::<Index>(), select(tokens)).prop_map(|(i, t)| Mutation::Insert(i, t)),
        2 => (any::<Index>(), -4i8..=4).prop_map(|(i, d)| Mutation::Reindent(i, d)),
        1 => any::<Index>().prop_map(Mutation::TabIndent),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        2 => (any::<Index>(), any::<char>()).prop_map(|(i, c)| Mutation::Replace(i, c)),
    ]
}

/// The byte offsets of every character boundary, the end included.
fn boundaries(text: &str) -> Vec<usize> {
    text.char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(text.len()))
        .collect()
}

fn lines(text: &str) -> Vec<String> {
    text.split_inclusive('\n').map(str::to_owned).collect()
}

/// `text` with `mutation` applied.
pub(crate) fn apply(text: &str, mutation: &Mutation) -> String {
    let at = |i: &Index| {
        let b = boundaries(text);
        b[i.index(b.len())]
    };
    let mut lines = lines(text);
    let line = |i: &Index, lines: &[String]| i.index(lines.len().max(1));
    match mutation {
        Mutation::Delete(i, n) => {
            let b = boundaries(text);
            let start = i.index(b.len());
            let end = (start + n).min(b.len() - 1);
            format!("{}{}", &text[..b[start]], &text[b[end]..])
        }
        Mutation::Insert(i, token) => {
            let at = at(i);
            format!("{}{token}{}", &text[..at], &text[at..])
        }
        Mutation::Truncate(i) => text[..at(i)].to_owned(),
        Mutation::Replace(i, c) => {
            let b = boundaries(text);
            let k = i.index(b.len());
            if k + 1 >= b.len() {
                format!("{text}{c}")
            } else {
                format!("{}{c}{}", &text[..b[k]], &text[b[k + 1]..])
            }
        }
        _ if lines.is_empty() => text.to_owned(),
        Mutation::DuplicateLine(i) => {
            let k = line(i, &lines);
            let mut copy = lines[k].clone();
            if !copy.ends_with('\n') {
                copy.push('\n');
            }
            lines.insert(k, copy);
            lines.concat()
        }
        Mutation::SwapLines(a, b) => {
            let (a, b) = (line(a, &lines), line(b, &lines));
            for k in [a, b] {
                if !lines[k].ends_with('\n') {
                    lines[k].push('\n');
                }
            }
            lines.swap(a, b);
            lines.concat()
        }
        Mutation::Reindent(i, delta) => {
            let k = line(i, &lines);
            let l = &lines[k];
            let indent = l.len() - l.trim_start_matches(' ').len();
            let new_indent = indent.saturating_add_signed(isize::from(*delta));
            lines[k] = format!("{}{}", " ".repeat(new_indent), &l[indent..]);
            lines.concat()
        }
        Mutation::TabIndent(i) => {
            let k = line(i, &lines);
            lines[k] = format!("\t{}", lines[k].trim_start_matches(' '));
            lines.concat()
        }
    }
}

/// `texts`, one picked and edited by one to four random mutations (inserting from `tokens`).
pub(crate) fn mutated(
    texts: Vec<String>,
    tokens: Vec<&'static str>,
) -> impl Strategy<Value = String> {
    (select(texts), prop::collection::vec(mutation(tokens), 1..5))
        .prop_map(|(text, mutations)| mutations.iter().fold(text, |t, m| apply(&t, m)))
}
