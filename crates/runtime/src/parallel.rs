//! Data parallelism for the work around the matmuls (attention, sampling, activations) on
//! candle's own worker pool, the one its quantized matmuls run on: a second pool (rayon) would
//! fight it for the same cores, and candle's workers spin between matmuls anyway.
//!
//! Every item is computed by exactly one thread in a fixed order, and nothing is reduced
//! across items: results do not depend on the number of threads or on scheduling.

use std::sync::Mutex;

/// Below this many items the work runs on the calling thread: waking the pool costs more than
/// it saves (and on a busy machine a sleeping worker can take a scheduler tick to wake).
const MIN_PARALLEL_ITEMS: usize = 4;

/// Run `f(i, &mut items[i])` for every item, spread over candle's worker pool.
pub(crate) fn for_each_mut<T: Send>(items: &mut [T], f: impl Fn(usize, &mut T) + Sync) {
    if items.len() < MIN_PARALLEL_ITEMS {
        items
            .iter_mut()
            .enumerate()
            .for_each(|(i, item)| f(i, item));
        return;
    }
    // One uncontended lock per item hands each worker its items' exclusive borrows safely.
    let cells: Vec<Mutex<&mut T>> = items.iter_mut().map(Mutex::new).collect();
    candle_core::utils::barrier_pool().execute_chunked(cells.len(), |range| {
        for i in range {
            let mut item = cells[i].lock().unwrap_or_else(|e| e.into_inner());
            f(i, &mut item);
        }
    });
}

/// Run `f(row_index, row)` for every `row_len`-long row of `data`, in parallel.
pub(crate) fn for_each_row(data: &mut [f32], row_len: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    let mut rows: Vec<&mut [f32]> = data.chunks_exact_mut(row_len).collect();
    for_each_mut(&mut rows, |i, row| f(i, row));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_is_visited_once_with_its_index() {
        let mut items: Vec<usize> = vec![0; 1000];
        for_each_mut(&mut items, |i, item| *item += i + 1);
        assert!(items.iter().enumerate().all(|(i, &v)| v == i + 1));
        let mut rows = vec![1f32; 12];
        for_each_row(&mut rows, 4, |i, row| {
            row.iter_mut().for_each(|v| *v *= i as f32)
        });
        assert_eq!(rows, [0., 0., 0., 0., 1., 1., 1., 1., 2., 2., 2., 2.]);
    }
}
