//! The search: which step each execution takes at each choice point, depth-first, with
//! sleep sets so that orders of commuting steps are explored once.
//!
//! A sleep set holds steps that need not be taken at a node: taking one would only
//! lead to executions equivalent (the same steps, commuting ones swapped) to some
//! already explored. When the search has explored step `a` at a node and moves on to
//! step `b`, `a` goes to sleep in `b`'s subtree as long as the steps taken there commute
//! with it; a step that does not commute with it wakes it (removes it). This alone
//! explores every class of equivalent executions at least once (Godefroid, 1996).

/// A location: the index of an atomic in one execution's memory.
pub(crate) type Loc = usize;

/// One choice: what moves the machine next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// CPU `cpu` runs its next load (`writes == false`) or locked instruction of `loc`.
    Run { cpu: usize, loc: Loc, writes: bool },
    /// CPU `cpu`'s store buffer writes its oldest entry, for `loc`, to memory.
    Drain { cpu: usize, loc: Loc },
}

impl Step {
    fn cpu(self) -> usize {
        match self {
            Step::Run { cpu, .. } | Step::Drain { cpu, .. } => cpu,
        }
    }

    /// The location it touches, and whether it writes memory.
    fn footprint(self) -> (Loc, bool) {
        match self {
            Step::Run { loc, writes, .. } => (loc, writes),
            Step::Drain { loc, .. } => (loc, true),
        }
    }

    /// Whether taking `self` then `other` reaches the same state as the other order, and
    /// neither disables the other (conservative: false is always safe).
    /// - Two steps of one CPU: its load and a drain of its own buffer commute (the load
    ///   returns the newest value the CPU wrote to its location either way: from the
    ///   buffer before the drain, from memory after it); its locked instruction is never
    ///   possible together with a drain (it needs an empty buffer).
    /// - Steps of two CPUs commute unless they touch one location and one of them
    ///   writes it.
    pub(crate) fn commutes_with(self, other: Step) -> bool {
        if self.cpu() == other.cpu() {
            return matches!(
                (self, other),
                (Step::Run { writes: false, .. }, Step::Drain { .. })
                    | (Step::Drain { .. }, Step::Run { writes: false, .. })
            );
        }
        let (a, aw) = self.footprint();
        let (b, bw) = other.footprint();
        a != b || (!aw && !bw)
    }
}

/// A choice point of the current path.
struct Node {
    /// The steps possible there, in a fixed order (by CPU, the thread's step first).
    enabled: Vec<Step>,
    /// The one this path takes.
    chosen: usize,
    /// Steps not to take here (see the top of this file).
    sleep: Vec<Step>,
    /// Steps already explored from here.
    done: Vec<Step>,
}

/// The depth-first search over choice sequences, kept across executions.
#[derive(Default)]
pub(crate) struct Explorer {
    path: Vec<Node>,
    depth: usize,
    /// Whether to prune with sleep sets (off only to cross-check them).
    pub(crate) no_reduction: bool,
}

/// Why [`Explorer::choose`] returned no step.
pub(crate) enum NoStep {
    /// Every possible step is asleep: what follows was explored already.
    Redundant,
    /// The replayed prefix offered other steps than when it was first run.
    Nondeterministic(String),
}

impl Explorer {
    /// Starts the next execution (from the root).
    pub(crate) fn begin(&mut self) {
        self.depth = 0;
    }

    /// Choice points passed in this execution.
    pub(crate) fn depth(&self) -> usize {
        self.depth
    }

    /// The step to take now, among `enabled` (not empty).
    pub(crate) fn choose(&mut self, enabled: Vec<Step>) -> Result<Step, NoStep> {
        if let Some(node) = self.path.get(self.depth) {
            if node.enabled != enabled {
                return Err(NoStep::Nondeterministic(format!(
                    "at choice {} the steps possible were {:?}, now {:?}",
                    self.depth, node.enabled, enabled
                )));
            }
            self.depth += 1;
            return Ok(node.enabled[node.chosen]);
        }
        let sleep: Vec<Step> = match self.path.last() {
            _ if self.no_reduction => Vec::new(),
            None => Vec::new(),
            Some(parent) => {
                let taken = parent.enabled[parent.chosen];
                parent
                    .sleep
                    .iter()
                    .chain(&parent.done)
                    .copied()
                    .filter(|s| s.commutes_with(taken))
                    .collect()
            }
        };
        let Some(chosen) = enabled.iter().position(|s| !sleep.contains(s)) else {
            return Err(NoStep::Redundant);
        };
        let step = enabled[chosen];
        self.path.push(Node {
            enabled,
            chosen,
            sleep,
            done: Vec::new(),
        });
        self.depth += 1;
        Ok(step)
    }

    /// After an execution: sets the path to the next one to run; false when every one
    /// has been explored.
    pub(crate) fn advance(&mut self) -> bool {
        self.path.truncate(self.depth);
        while let Some(node) = self.path.last_mut() {
            let taken = node.enabled[node.chosen];
            node.done.push(taken);
            if let Some(next) = node
                .enabled
                .iter()
                .position(|s| !node.sleep.contains(s) && !node.done.contains(s))
            {
                node.chosen = next;
                return true;
            }
            self.path.pop();
        }
        false
    }
}
