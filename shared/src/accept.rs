//! What an accept loop does after `accept()` fails. Running out of file descriptors (or kernel buffers)
//! fails every accept until something is closed, so retrying at once spins a core; those errors pause the
//! loop with an exponential back-off while existing connections keep being served. Errors about one
//! connection (aborted before it was accepted, and the like) are skipped without a pause.

use std::io;
use std::time::Duration;

/// The class of an accept error, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptError {
    /// EMFILE or ENFILE: no file descriptor left for this process or the system.
    Descriptors,
    /// ENOBUFS or ENOMEM: the kernel could not allocate for the socket.
    Memory,
    /// Anything else: a problem with that one connection.
    Connection,
}

impl AcceptError {
    /// Classifies an error from `accept()` (Linux error numbers).
    pub fn of(e: &io::Error) -> AcceptError {
        match e.raw_os_error() {
            Some(23 | 24) => AcceptError::Descriptors,
            Some(12 | 105) => AcceptError::Memory,
            _ => AcceptError::Connection,
        }
    }

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            AcceptError::Descriptors => "descriptors",
            AcceptError::Memory => "memory",
            AcceptError::Connection => "connection",
        }
    }
}

/// Consecutive resource errors of one accept loop and the pause they call for.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    consecutive: u32,
}

impl AcceptBackoff {
    /// The shortest and longest pause.
    pub const MIN: Duration = Duration::from_millis(5);
    pub const MAX: Duration = Duration::from_secs(1);

    /// Records an error; returns its class and how long to wait before the next `accept()` (zero for a
    /// one-connection error).
    pub fn failed(&mut self, e: &io::Error) -> (AcceptError, Duration) {
        let class = AcceptError::of(e);
        if class == AcceptError::Connection {
            return (class, Duration::ZERO);
        }
        let pause = Self::MIN
            .saturating_mul(1 << self.consecutive.min(8))
            .min(Self::MAX);
        self.consecutive = self.consecutive.saturating_add(1);
        (class, pause)
    }

    /// True when the last error was the first of a run (worth a log line; the rest are counted).
    pub fn first_of_run(&self) -> bool {
        self.consecutive == 1
    }

    /// Records an accepted connection: the next resource error starts a new run.
    pub fn accepted(&mut self) {
        self.consecutive = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_exhaustion_backs_off_exponentially_to_a_bound() {
        let mut b = AcceptBackoff::default();
        let emfile = io::Error::from_raw_os_error(24);
        let pauses: Vec<Duration> = (0..12).map(|_| b.failed(&emfile).1).collect();
        assert_eq!(pauses[0], AcceptBackoff::MIN);
        assert!(pauses.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*pauses.last().unwrap(), AcceptBackoff::MAX);
        b.accepted();
        assert_eq!(b.failed(&emfile).1, AcceptBackoff::MIN);
        assert!(b.first_of_run());
        let aborted = io::Error::from_raw_os_error(103);
        assert_eq!(
            b.failed(&aborted),
            (AcceptError::Connection, Duration::ZERO)
        );
        assert_eq!(
            AcceptError::of(&io::Error::from_raw_os_error(23)),
            AcceptError::Descriptors
        );
    }
}
