//! The step order of a stage once its skipped steps are taken out.

/// The effective predecessors of the steps for each set of skipped steps met so far (stages
/// often skip the same steps, or none).
#[derive(Debug, Default)]
pub(super) struct Orders {
    known: Vec<(Vec<bool>, Vec<Vec<usize>>)>,
}

impl Orders {
    /// [`effective_predecessors`] for a stage that skips `skipped`.
    pub(super) fn get(&mut self, predecessors: &[Vec<usize>], skipped: &[bool]) -> &[Vec<usize>] {
        let at = match self.known.iter().position(|(s, _)| s == skipped) {
            Some(at) => at,
            None => {
                let effective = effective_predecessors(predecessors, skipped);
                self.known.push((skipped.to_vec(), effective));
                self.known.len() - 1
            }
        };
        &self.known[at].1
    }
}

/// For each step, what it waits for once skipped steps are taken out: a skipped predecessor is
/// replaced by that predecessor's own (effective) predecessors. `predecessors[i]` are the steps
/// step `i` waits for, in ascending order.
fn effective_predecessors(predecessors: &[Vec<usize>], skipped: &[bool]) -> Vec<Vec<usize>> {
    let n = skipped.len();
    let mut memo: Vec<Option<Vec<usize>>> = vec![None; n];
    fn visit(
        i: usize,
        predecessors: &[Vec<usize>],
        skipped: &[bool],
        memo: &mut Vec<Option<Vec<usize>>>,
        depth: usize,
    ) -> Vec<usize> {
        if let Some(done) = &memo[i] {
            return done.clone();
        }
        let mut out = Vec::new();
        if depth <= skipped.len() {
            for &p in &predecessors[i] {
                if skipped[p] {
                    out.extend(visit(p, predecessors, skipped, memo, depth + 1));
                } else {
                    out.push(p);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        memo[i] = Some(out.clone());
        out
    }
    (0..n)
        .map(|i| visit(i, predecessors, skipped, &mut memo, 0))
        .collect()
}
