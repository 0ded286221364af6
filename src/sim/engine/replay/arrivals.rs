//! The trace's arrivals in time order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::clock::Time;
use crate::policy::FunctionId;
use crate::sim::trace::{Arrival, TraceFunction};

/// The functions' arrival lists merged in time order: one cursor per function and a heap of
/// each function's next arrival. Ties go to the lower function index.
pub(in crate::sim::engine) struct Arrivals<'t> {
    functions: &'t [TraceFunction],
    cursor: Vec<usize>,
    heap: BinaryHeap<Reverse<(Time, FunctionId)>>,
}

impl<'t> Arrivals<'t> {
    pub(in crate::sim::engine) fn new(functions: &'t [TraceFunction]) -> Self {
        let heap = functions
            .iter()
            .enumerate()
            .filter_map(|(f, tf)| tf.arrivals.first().map(|a| Reverse((a.at, f))))
            .collect();
        Arrivals {
            functions,
            cursor: vec![0; functions.len()],
            heap,
        }
    }

    pub(in crate::sim::engine) fn peek(&self) -> Option<Time> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    pub(in crate::sim::engine) fn pop(&mut self) -> Option<(FunctionId, &'t Arrival)> {
        let Reverse((_, f)) = self.heap.pop()?;
        let arrivals = &self.functions[f].arrivals;
        let arrival = &arrivals[self.cursor[f]];
        self.cursor[f] += 1;
        if let Some(next) = arrivals.get(self.cursor[f]) {
            self.heap.push(Reverse((next.at, f)));
        }
        Some((f, arrival))
    }
}
