//! Work split over threads of the store's own (scoped: they end before the call does).

/// `work` on each of `parts`, each in a thread of its own, the results in order. A
/// panic in one is raised again here.
pub(crate) fn each_on_a_thread<P: Sync, R: Send>(
    parts: &[P],
    work: impl Fn(&P) -> R + Sync,
) -> Vec<R> {
    std::thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = parts
            .iter()
            .map(|part| scope.spawn(move || work(part)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}
