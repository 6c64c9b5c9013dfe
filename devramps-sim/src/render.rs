//! [`render_text`]: the report as a readable timeline, for `devramps simulate --format text`.

use std::fmt::Write as _;

use crate::report::{EventReport, Report, StageReport, Synthesis, format_time};

/// Lines of the timeline are kept to this many characters where the lanes allow it.
const WIDTH: usize = 120;
/// Bounds of the width of one lane.
const LANE_MIN: usize = 14;
const LANE_MAX: usize = 30;
/// The lane of events that belong to no stage.
const PIPELINE_LANE: &str = "pipeline";

/// Renders the report as text: a header, the timeline (one row per event, at its offset from
/// the start, in the lane of its stage or in the `pipeline` lane), then a summary of the
/// deployments, builds, stages and violations.
///
/// The output depends only on the report, is plain text ending with a newline, and keeps its
/// lines to about 120 characters (wider only when there are many stages).
pub fn render_text(report: &Report) -> String {
    let mut out = String::new();
    header(&mut out, report);
    timeline(&mut out, report);
    deployments(&mut out, report);
    builds(&mut out, report);
    stages(&mut out, report);
    violations(&mut out, report);
    out
}

fn header(out: &mut String, report: &Report) {
    let _ = writeln!(
        out,
        "Simulation from {} to {} ({})",
        format_time(report.start),
        format_time(report.end),
        offset(report, report.end.as_second()),
    );
    let _ = writeln!(
        out,
        "{}, {}, {}, {}",
        count(report.deployments.len(), "deployment"),
        count(report.builds.len(), "build"),
        count(report.events.len(), "event"),
        count(report.violations.len(), "violation"),
    );
}

/// The stage names: those of `report.stages`, then any other named by a deployment or event,
/// in the order first seen.
fn stage_names(report: &Report) -> Vec<String> {
    let mut names: Vec<String> = report.stages.iter().map(|(n, _)| n.to_owned()).collect();
    let others = report
        .deployments
        .iter()
        .flat_map(|d| d.stages.iter().map(|(n, _)| n))
        .chain(report.events.iter().filter_map(|e| e.stage.as_deref()));
    for name in others {
        if !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    }
    names
}

fn timeline(out: &mut String, report: &Report) {
    let mut lanes = vec![PIPELINE_LANE.to_owned()];
    lanes.extend(stage_names(report));
    let times: Vec<String> = report
        .events
        .iter()
        .map(|e| offset(report, e.at.as_second()))
        .collect();
    let time_width = times.iter().map(|t| width(t)).chain([4]).max().unwrap_or(4);
    let available = WIDTH.saturating_sub(time_width + 3 * lanes.len());
    let lane_width = (available / lanes.len()).clamp(LANE_MIN, LANE_MAX);

    out.push('\n');
    let titles: Vec<String> = lanes.iter().map(|l| fit(l, lane_width)).collect();
    row(out, &pad("time", time_width), &titles, lane_width);
    let mut rule = "-".repeat(time_width + 1);
    for _ in &lanes {
        rule.push('+');
        rule.push_str(&"-".repeat(lane_width + 2));
    }
    rule.pop();
    let _ = writeln!(out, "{rule}");
    for (event, time) in report.events.iter().zip(&times) {
        let lane = event
            .stage
            .as_deref()
            .and_then(|s| lanes.iter().position(|l| l == s))
            .unwrap_or(0);
        let start = time_width + 3 + lane * (lane_width + 3);
        // Each row holds one event, so its cell may run on over the empty lanes to its right.
        let room = WIDTH.saturating_sub(start).max(lane_width);
        let mut cells = vec![String::new(); lane];
        cells.push(fit(&describe(event), room));
        row(out, &pad(time, time_width), &cells, lane_width);
    }
}

/// Writes `time | cell | cell ...`, padding every cell but the last to the lane width.
fn row(out: &mut String, time: &str, cells: &[String], lane_width: usize) {
    let mut line = time.to_owned();
    for (i, cell) in cells.iter().enumerate() {
        line.push_str(" | ");
        if i + 1 < cells.len() {
            line.push_str(&pad(cell, lane_width));
        } else {
            line.push_str(cell);
        }
    }
    let _ = writeln!(out, "{}", line.trim_end());
}

/// One event as a short phrase, for example `r1 deploy SUCCEEDED` or `r2 refused: ...`.
fn describe(event: &EventReport) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(revision) = event.revision {
        parts.push(format!("r{revision}"));
    }
    match event.kind.as_str() {
        "stage_state" => {}
        "step_state" => parts.extend(event.step.clone()),
        "deployment_accepted" => {
            parts.push("accepted".to_owned());
            parts.extend(event.commit.clone());
        }
        kind => {
            parts.push(kind.replace('_', " "));
            if event.revision.is_none() {
                parts.extend(event.commit.clone());
            }
            parts.extend(event.step.clone());
        }
    }
    parts.extend(event.state.clone());
    if let Some(actor) = event.actor.as_deref().filter(|a| *a != "system") {
        parts.push(format!("by {actor}"));
    }
    let mut text = parts.join(" ");
    if let Some(reason) = &event.reason {
        text.push_str(": ");
        text.push_str(reason);
    }
    text
}

fn deployments(out: &mut String, report: &Report) {
    if report.deployments.is_empty() {
        return;
    }
    let names = stage_names(report);
    let mut rows = vec![
        ["rev", "commit", "synthesis"]
            .iter()
            .map(|s| (*s).to_owned())
            .chain(names.iter().cloned())
            .collect::<Vec<_>>(),
    ];
    for deployment in &report.deployments {
        let mut cells = vec![
            format!("r{}", deployment.revision),
            deployment.commit.clone(),
            synthesis(deployment.synthesis).to_owned(),
        ];
        cells.extend(names.iter().map(|name| {
            deployment
                .stages
                .get(name)
                .map_or_else(|| "-".to_owned(), stage_cell)
        }));
        rows.push(cells);
    }
    out.push_str("\nDeployments\n");
    table(out, &rows);
}

fn stage_cell(stage: &StageReport) -> String {
    let mut cell = stage.state.clone();
    if let Some(waiting_for) = &stage.waiting_for {
        let _ = write!(cell, " ({waiting_for})");
    }
    if let Some(revision) = stage.superseded_by {
        let _ = write!(cell, " (by r{revision})");
    }
    if stage.attempts > 1 {
        let _ = write!(cell, " x{}", stage.attempts);
    }
    cell
}

fn synthesis(synthesis: Synthesis) -> &'static str {
    match synthesis {
        Synthesis::Succeeded => "SUCCEEDED",
        Synthesis::Failed => "FAILED",
        Synthesis::WaitingApproval => "WAITING_APPROVAL",
    }
}

fn builds(out: &mut String, report: &Report) {
    if report.builds.is_empty() {
        return;
    }
    let mut rows = vec![
        ["rev", "commit", "artifact", "stage", "result"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect::<Vec<_>>(),
    ];
    for build in &report.builds {
        rows.push(vec![
            format!("r{}", build.revision),
            build.commit.clone(),
            build.artifact.clone(),
            build.stage.clone().unwrap_or_else(|| "(shared)".to_owned()),
            build.result.clone(),
        ]);
    }
    out.push_str("\nBuilds\n");
    table(out, &rows);
}

fn stages(out: &mut String, report: &Report) {
    if report.stages.is_empty() {
        return;
    }
    let mut rows = vec![
        ["stage", "current", "blockers"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect::<Vec<_>>(),
    ];
    for (name, stage) in report.stages.iter() {
        let current = match (stage.current_revision, &stage.current_commit) {
            (Some(revision), Some(commit)) => format!("r{revision} ({commit})"),
            (Some(revision), None) => format!("r{revision}"),
            (None, _) => "-".to_owned(),
        };
        let blockers = if stage.blockers.is_empty() {
            "-".to_owned()
        } else {
            stage.blockers.join(", ")
        };
        rows.push(vec![name.to_owned(), current, blockers]);
    }
    out.push_str("\nStages\n");
    table(out, &rows);
}

fn violations(out: &mut String, report: &Report) {
    if report.violations.is_empty() {
        out.push_str("\nViolations: none\n");
        return;
    }
    out.push_str("\nViolations\n");
    for violation in &report.violations {
        let _ = writeln!(out, "  - {violation}");
    }
}

/// Writes rows as columns, two spaces apart, indented by two.
fn table(out: &mut String, rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| width(cell))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for cells in rows {
        let mut line = String::from(" ");
        for (cell, w) in cells.iter().zip(&widths) {
            line.push(' ');
            line.push_str(&pad(cell, *w));
            line.push(' ');
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

/// `+HH:MM:SS` after the start, `+Nd HH:MM:SS` from one day on, with `-` before the start.
fn offset(report: &Report, at_second: i64) -> String {
    let delta = at_second.saturating_sub(report.start.as_second());
    let sign = if delta < 0 { '-' } else { '+' };
    let secs = delta.unsigned_abs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let clock = format!(
        "{:02}:{:02}:{:02}",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    );
    if days > 0 {
        format!("{sign}{days}d {clock}")
    } else {
        format!("{sign}{clock}")
    }
}

fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn width(text: &str) -> usize {
    text.chars().count()
}

fn pad(text: &str, to: usize) -> String {
    let mut out = text.to_owned();
    out.extend(std::iter::repeat_n(' ', to.saturating_sub(width(text))));
    out
}

/// `text` cut to `max` characters, ending with `…` when cut.
fn fit(text: &str, max: usize) -> String {
    if width(text) <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}
