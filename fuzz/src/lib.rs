//! Helpers shared by the fuzz targets.

/// The stack a tokio worker thread gets (2 MiB). libFuzzer runs inputs on the main thread, whose stack is
/// far larger and would hide recursion that overflows a worker.
pub const WORKER_STACK: usize = 2 * 1024 * 1024;

/// Runs `f` on a thread with a worker's stack; a panic there is re-raised here, so libFuzzer sees it.
pub fn on_worker_stack(f: impl FnOnce() + Send) {
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new()
            .stack_size(WORKER_STACK)
            .spawn_scoped(s, f)
            .expect("spawn a worker-sized thread");
        if let Err(panic) = handle.join() {
            std::panic::resume_unwind(panic);
        }
    });
}

/// Splits an input at its first NUL byte: two independent strings from one input.
pub fn split2(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

pub mod hyper_oracle;
