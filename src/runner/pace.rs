//! `--rate`: run starts spaced at least `interval` apart, across all
//! workers, whatever `--parallel` is.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Hands out start times one `interval` apart.
pub(super) struct Pacer {
    interval: Option<Duration>,
    next: Mutex<Option<Instant>>,
}

/// How often a waiting worker looks whether the run is stopping.
const TICK: Duration = Duration::from_millis(50);

impl Pacer {
    pub(super) fn new(interval: Option<Duration>) -> Pacer {
        Pacer {
            interval,
            next: Mutex::new(None),
        }
    }

    /// Waits for this worker's turn to start a run; false if `stop` became
    /// true meanwhile (the turn is then given up).
    pub(super) fn wait_turn(&self, stop: &dyn Fn() -> bool) -> bool {
        let Some(interval) = self.interval else {
            return true;
        };
        let turn = {
            // A poisoned lock only means another worker panicked; the time in it is still good.
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let turn = next.map_or(now, |n| n.max(now));
            *next = Some(turn + interval);
            turn
        };
        loop {
            if stop() {
                return false;
            }
            let now = Instant::now();
            if now >= turn {
                return true;
            }
            std::thread::sleep((turn - now).min(TICK));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_are_an_interval_apart() {
        let pacer = Pacer::new(Some(Duration::from_millis(30)));
        let start = Instant::now();
        for _ in 0..4 {
            assert!(pacer.wait_turn(&|| false));
        }
        // Four starts: the first at once, then three intervals.
        assert!(start.elapsed() >= Duration::from_millis(90));
        assert!(!Pacer::new(Some(Duration::from_secs(60))).wait_turn(&|| true));
        assert!(Pacer::new(None).wait_turn(&|| true));
    }
}
