//! What client commands print, without ever panicking.
//!
//! `println!` panics when stdout is closed (`show_node -i all | head -1`, a cron job whose
//! mail pipe died). A client has already done its work by the time it prints, so a closed
//! stdout ends the output quietly and the exit code still says how the request went.

use std::io::Write;

/// Writes `text` to stdout; a closed or failing stdout is ignored.
pub fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// `print!` for client output: never panics.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::out(&format!($($arg)*)) };
}

/// `println!` for client output: never panics.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => { $crate::output::out(&format!("{}\n", format_args!($($arg)*))) };
}

/// A status line of client output: `say!(Status::Failed, "cannot start {}", x)` prints
/// `400: cannot start …`. The prefix comes from the [`Status`](crate::protocol::Status).
#[macro_export]
macro_rules! say {
    ($status:expr, $($arg:tt)*) => {
        $crate::output::out(&format!(
            "{}\n",
            $crate::protocol::Line::status($status, format!($($arg)*))
        ))
    };
}
