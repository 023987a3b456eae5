//! Allocation limits: how many f64 elements one evaluation may hold, so that a huge
//! shape (a broadcast to 10^14 elements, which NumPy holds as a view) is a clear error
//! before anything is allocated, never an aborted process.

use std::sync::OnceLock;

/// The words a too-large allocation error starts with; the bindings turn an error
/// containing them into Python's `MemoryError`.
pub const TOO_LARGE: &str = "cannot allocate";

/// The most f64 elements one evaluation may allocate in all: `AUTODIFF_MAX_ELEMENTS` if
/// set, otherwise the machine's physical memory (Linux `/proc/meminfo`; 2^37 elements =
/// 1 TiB elsewhere) divided by 8 bytes.
pub fn max_elements() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| {
        if let Some(n) = std::env::var("AUTODIFF_MAX_ELEMENTS")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
        {
            return n;
        }
        let mem_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<usize>().ok())
                    .map(|kb| kb.saturating_mul(1024))
            })
            .unwrap_or(1 << 40);
        mem_bytes / 8
    })
}

/// The number of elements of `shape`, or `None` if the product overflows `isize` bytes.
pub fn checked_size(shape: &[usize]) -> Option<usize> {
    let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?;
    (n <= (isize::MAX as usize) / 8).then_some(n)
}

/// `Err(message)` when `elements` (the total an evaluation would hold) is over the limit.
pub fn check_elements(elements: usize, what: &str) -> Result<(), String> {
    let max = max_elements();
    if elements > max {
        return Err(format!(
            "{TOO_LARGE} {what}: {elements} float64 elements ({:.3e} bytes) exceed the limit of \
             {max} elements (the machine's memory; AUTODIFF_MAX_ELEMENTS sets it). NumPy may \
             hold such a value as a view (np.broadcast_to); index or reduce it before it \
             becomes an array of this size",
            elements as f64 * 8.0
        ));
    }
    Ok(())
}
