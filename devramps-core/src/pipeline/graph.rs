//! The step graph of a pipeline: which steps each step waits for.
//!
//! A step without `goes_after` waits for the step listed before it (the first step waits for
//! nothing); a step with `goes_after` waits exactly for the steps it names (by name or id).

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use super::model::{PipelineDefinition, Step};
use super::span::Span;

/// Why a step waits for another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EdgeOrigin {
    /// The step has no `goes_after` and follows the other in the list.
    ListOrder,
    /// A `goes_after` entry, written at this span.
    GoesAfter(Span),
}

/// The step graph: node `i` is `definition.steps[i]`; an edge `a -> b` means `b` waits for `a`.
#[derive(Clone, Debug)]
pub struct StepGraph {
    graph: DiGraph<usize, EdgeOrigin>,
}

impl StepGraph {
    /// Builds the graph. `goes_after` entries that name no step are left out (validation reports
    /// them).
    pub fn new(steps: &[Step]) -> Self {
        let mut graph = DiGraph::with_capacity(steps.len(), steps.len());
        let nodes: Vec<NodeIndex> = (0..steps.len()).map(|i| graph.add_node(i)).collect();
        let index = StepIndex::new(steps);
        for (i, step) in steps.iter().enumerate() {
            match &step.goes_after {
                None if i > 0 => {
                    graph.add_edge(nodes[i - 1], nodes[i], EdgeOrigin::ListOrder);
                }
                None => {}
                Some(deps) => {
                    let mut seen = Vec::with_capacity(deps.len());
                    for dep in deps {
                        if let Some(j) = index.get(&dep.value)
                            && !seen.contains(&j)
                        {
                            seen.push(j);
                            graph.add_edge(nodes[j], nodes[i], EdgeOrigin::GoesAfter(dep.span));
                        }
                    }
                }
            }
        }
        StepGraph { graph }
    }

    /// Builds the graph of a definition's steps.
    pub fn of(definition: &PipelineDefinition) -> Self {
        StepGraph::new(&definition.steps)
    }

    /// The indices of the steps that step `i` waits for, in ascending order.
    pub fn predecessors(&self, i: usize) -> Vec<usize> {
        let mut out: Vec<usize> = self
            .graph
            .neighbors_directed(NodeIndex::new(i), petgraph::Direction::Incoming)
            .map(|n| self.graph[n])
            .collect();
        out.sort_unstable();
        out
    }

    /// For each step `i`, which steps finish before `i` starts (its transitive predecessors):
    /// `ancestors()[i][j]` is true when step `j` is an ancestor of step `i`.
    pub fn ancestors(&self) -> Vec<Vec<bool>> {
        let n = self.graph.node_count();
        let mut out = vec![vec![false; n]; n];
        // Without cycles, in an order where each step comes after the steps it waits for, a
        // step's ancestors are its predecessors and their ancestors.
        if let Ok(order) = petgraph::algo::toposort(&self.graph, None) {
            for node in order {
                let i = self.graph[node];
                let mut row = std::mem::take(&mut out[i]);
                for pred in self
                    .graph
                    .neighbors_directed(node, petgraph::Direction::Incoming)
                {
                    let j = self.graph[pred];
                    row[j] = true;
                    row.iter_mut().zip(&out[j]).for_each(|(a, b)| *a |= *b);
                }
                out[i] = row;
            }
            return out;
        }
        self.ancestors_by_search(out)
    }

    /// [`StepGraph::ancestors`] by a search from each step, which also works with cycles; `out`
    /// is all `false`.
    fn ancestors_by_search(&self, mut out: Vec<Vec<bool>>) -> Vec<Vec<bool>> {
        for (i, row) in out.iter_mut().enumerate() {
            let mut stack = vec![NodeIndex::new(i)];
            while let Some(node) = stack.pop() {
                for pred in self
                    .graph
                    .neighbors_directed(node, petgraph::Direction::Incoming)
                {
                    let j = self.graph[pred];
                    if !row[j] {
                        row[j] = true;
                        stack.push(pred);
                    }
                }
            }
        }
        out
    }

    /// Why step `waiter` waits for step `waited_for`, if it does.
    pub fn origin(&self, waiter: usize, waited_for: usize) -> Option<EdgeOrigin> {
        self.graph
            .find_edge(NodeIndex::new(waited_for), NodeIndex::new(waiter))
            .map(|e| self.graph[e])
    }

    /// The cycles of the graph: each is a list of step indices in which every step waits for the
    /// next and the last waits for the first, starting at the cycle's first step in list order.
    /// Empty when the graph is acyclic. One cycle is given per strongly connected component.
    pub fn cycles(&self) -> Vec<Vec<usize>> {
        let mut cycles: Vec<Vec<usize>> = tarjan_scc(&self.graph)
            .into_iter()
            .filter(|scc| scc.len() > 1 || self.graph.contains_edge(scc[0], scc[0]))
            .map(|scc| self.cycle_in(&scc))
            .collect();
        cycles.sort();
        cycles
    }

    /// The shortest cycle through the first step (in list order) of a strongly connected
    /// component, found breadth-first along "waits for" edges.
    fn cycle_in(&self, scc: &[NodeIndex]) -> Vec<usize> {
        use std::collections::{BTreeMap, VecDeque};
        let start = scc
            .iter()
            .copied()
            .min_by_key(|n| self.graph[*n])
            .unwrap_or(scc[0]);
        let mut reached_from: BTreeMap<NodeIndex, NodeIndex> = BTreeMap::new();
        let mut queue = VecDeque::from([start]);
        while let Some(n) = queue.pop_front() {
            // `n` waits for each of its incoming neighbours.
            for m in self
                .graph
                .neighbors_directed(n, petgraph::Direction::Incoming)
            {
                if m == start {
                    let mut path = vec![self.graph[n]];
                    let mut cur = n;
                    while cur != start {
                        cur = reached_from[&cur];
                        path.push(self.graph[cur]);
                    }
                    path.reverse();
                    return path;
                }
                if scc.contains(&m) && !reached_from.contains_key(&m) && m != start {
                    reached_from.insert(m, n);
                    queue.push_back(m);
                }
            }
        }
        vec![self.graph[start]]
    }
}

/// Finds steps by id or name in constant time (ids win over names, as in [`find_step`]), and,
/// when built with [`StepIndex::of`], artifacts by name or id (names win, as in
/// [`PipelineDefinition::artifact`]).
#[derive(Clone, Debug, Default)]
pub struct StepIndex {
    by_reference: std::collections::HashMap<String, usize>,
    artifacts: Option<std::collections::HashMap<String, usize>>,
}

impl StepIndex {
    /// Indexes `steps`.
    pub fn new(steps: &[Step]) -> Self {
        let mut by_reference = std::collections::HashMap::with_capacity(steps.len() * 2);
        // Names first, so that ids (inserted after) win; the first of equal references wins.
        for (i, step) in steps.iter().enumerate().rev() {
            by_reference.insert(step.name.value.clone(), i);
        }
        for (i, step) in steps.iter().enumerate().rev() {
            if let Some(id) = &step.id {
                by_reference.insert(id.value.clone(), i);
            }
        }
        StepIndex {
            by_reference,
            artifacts: None,
        }
    }

    /// Indexes the steps and the artifacts of a definition.
    pub fn of(definition: &PipelineDefinition) -> Self {
        let mut index = StepIndex::new(&definition.steps);
        let mut artifacts =
            std::collections::HashMap::with_capacity(definition.artifacts.len() * 2);
        for (i, a) in definition.artifacts.iter().enumerate().rev() {
            artifacts.insert(a.id.value.clone(), i);
        }
        for (i, a) in definition.artifacts.iter().enumerate().rev() {
            artifacts.insert(a.name.value.clone(), i);
        }
        index.artifacts = Some(artifacts);
        index
    }

    /// The index of the artifact with this name or id, when artifacts were indexed
    /// (`None` from an index of steps only means "not indexed": use
    /// [`PipelineDefinition::artifact`]).
    pub fn artifact(&self, reference: &str) -> Option<Option<usize>> {
        self.artifacts.as_ref().map(|a| a.get(reference).copied())
    }

    /// The index of the step with this id or name.
    pub fn get(&self, reference: &str) -> Option<usize> {
        self.by_reference.get(reference).copied()
    }
}

/// The index of the step named `reference` (id first, then name).
pub fn find_step(steps: &[Step], reference: &str) -> Option<usize> {
    steps
        .iter()
        .position(|s| s.id.as_ref().is_some_and(|id| id.value == reference))
        .or_else(|| steps.iter().position(|s| s.name.value == reference))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::parse;

    #[test]
    fn ancestors_in_order_are_those_found_by_search() {
        let text = concat!(
            "version: \"1.0.0\"\npipeline:\n  cloud_provider: AWS\n",
            "  pipeline_updates_require_approval: NEVER\n",
            "  stages: [{name: s, account_id: \"111111111111\", region: us-east-1}]\n",
            "  steps:\n",
            "    - {name: A, type: \"CUSTOM:A\", goes_after: [D]}\n",
            "    - {name: B, type: \"CUSTOM:B\"}\n",
            "    - {name: C, type: \"CUSTOM:C\", goes_after: [A, B]}\n",
            "    - {name: D, type: \"CUSTOM:D\", goes_after: []}\n",
            "    - {name: E, type: \"CUSTOM:E\"}\n",
            "  artifacts: {}\n",
        );
        let definition = parse(text).expect("valid");
        let graph = StepGraph::of(&definition);
        let n = definition.steps.len();
        let ancestors = graph.ancestors();
        assert_eq!(
            ancestors,
            graph.ancestors_by_search(vec![vec![false; n]; n])
        );
        // C waits for A (which waits for D) and B (which follows A): all but C and E.
        assert_eq!(ancestors[2], [true, true, false, true, false]);
        assert_eq!(ancestors[3], [false; 5]);
    }
}
