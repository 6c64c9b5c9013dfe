//! `docs/lifecycle-diagram.md` is generated from the transition tables; this test fails when
//! the committed file differs from what `devramps_core::lifecycle::diagram()` generates.
//!
//! Regenerate it with
//! `DEVRAMPS_BLESS=1 cargo test -p devramps-core --test lifecycle_diagram`.

use devramps_core::lifecycle::{STEP_TRANSITIONS, TRANSITIONS, diagram};

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/lifecycle-diagram.md");

#[test]
fn the_committed_lifecycle_diagram_is_the_generated_one() {
    let generated = diagram();
    if std::env::var_os("DEVRAMPS_BLESS").is_some() {
        std::fs::write(COMMITTED, &generated).expect("writes docs/lifecycle-diagram.md");
    }
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    if committed != generated {
        let first = committed
            .lines()
            .zip(generated.lines())
            .position(|(c, g)| c != g)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
        panic!(
            "docs/lifecycle-diagram.md is not the diagram of the transition tables (first \
             difference at line {}).\nRegenerate it with:\n    DEVRAMPS_BLESS=1 cargo test -p \
             devramps-core --test lifecycle_diagram\n",
            first + 1
        );
    }
}

#[test]
fn the_diagram_shows_every_edge_of_both_tables() {
    let generated = diagram();
    for (from, trigger, to) in TRANSITIONS {
        let edge = format!("{from} --> {to}: {trigger:?}\n");
        assert!(generated.contains(&edge), "missing stage edge {edge}");
    }
    for (from, trigger, to, rule) in STEP_TRANSITIONS {
        let edge = format!(
            "{} --> {}: {trigger:?} ({rule})\n",
            from.as_str(),
            to.as_str()
        );
        assert!(generated.contains(&edge), "missing step edge {edge}");
    }
    let edges = generated.lines().filter(|l| l.contains(" --> ")).count();
    let starts = generated.lines().filter(|l| l.contains("[*] --> ")).count();
    assert_eq!(edges - starts, TRANSITIONS.len() + STEP_TRANSITIONS.len());
}
