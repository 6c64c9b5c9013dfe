//! The lifecycle diagram, generated from the two transition tables: the stage table
//! ([`TRANSITIONS`](super::TRANSITIONS)) and the step table
//! ([`STEP_TRANSITIONS`](super::STEP_TRANSITIONS)). `docs/lifecycle-diagram.md` holds its output,
//! and a test fails when the two differ.

use std::fmt::Write as _;

use super::step_table::STEP_TRANSITIONS;
use super::table::mermaid;

/// The step table as a Mermaid state diagram: every edge labelled with its trigger and rule id.
pub fn step_mermaid() -> String {
    let mut out = String::from("stateDiagram-v2\n    [*] --> PENDING\n    [*] --> SKIPPED\n");
    for (from, trigger, to, rule) in STEP_TRANSITIONS {
        let (from, to) = (from.as_str(), to.as_str());
        let _ = writeln!(out, "    {from} --> {to}: {trigger:?} ({rule})");
    }
    out
}

/// The Markdown document `docs/lifecycle-diagram.md`: both tables as Mermaid diagrams.
///
/// ```
/// let doc = devramps_core::lifecycle::diagram();
/// assert!(doc.contains("PENDING --> RUNNING: Start (L4)"));
/// assert!(doc.contains("IN_PROGRESS --> CANCELLING: RequestCancel"));
/// ```
pub fn diagram() -> String {
    format!(
        "<!-- Generated from devramps-core/src/lifecycle/{{table,step_table}}.rs by \
         `devramps_core::lifecycle::diagram()`. Do not edit: regenerate with\n     \
         DEVRAMPS_BLESS=1 cargo test -p devramps-core --test lifecycle_diagram -->\n\
         # Lifecycle diagram\n\
         \n\
         The states of a stage-deployment and of a step, as the machine changes them: every\n\
         edge below is a row of a transition table, and the machine moves a state only along\n\
         those rows (rule ids refer to `lifecycle.md`).\n\
         \n\
         ## Stage-deployment (`lifecycle::TRANSITIONS`)\n\
         \n\
         ```mermaid\n{}```\n\
         \n\
         ## Step (`lifecycle::STEP_TRANSITIONS`)\n\
         \n\
         A step starts `PENDING` in every attempt, or `SKIPPED` when the stage's `skip` list\n\
         names it.\n\
         \n\
         ```mermaid\n{}```\n",
        mermaid(),
        step_mermaid()
    )
}
