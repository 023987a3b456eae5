//! Panics become exceptions: every entry point catches them, and the process-wide hook
//! records where the last one on this thread happened, so the message can say so.

thread_local! {
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Where the last panic on this thread happened (recorded by [`install_hook`]).
pub fn last_panic_location() -> Option<String> {
    LAST_PANIC.with(|c| c.borrow_mut().take())
}

/// Every panic is caught at the entry points and becomes an exception whose message says
/// where it happened; the hook records that place instead of printing to stderr (set
/// `AUTODIFF_DEBUG_PANICS=1` to print Rust's usual message and backtrace too). The hook
/// is this extension's own (its Rust runtime is linked in), not other modules'.
pub fn install_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()));
        LAST_PANIC.with(|c| *c.borrow_mut() = at);
        if std::env::var_os("AUTODIFF_DEBUG_PANICS").is_some() {
            default(info);
        }
    }));
}

/// The message of a caught panic, with where it happened when the hook recorded it.
pub fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    let msg = p
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    match last_panic_location() {
        Some(at) => format!("{msg} at {at}"),
        None => msg,
    }
}
