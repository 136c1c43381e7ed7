//! SIGINT and SIGTERM: the first asks the run to stop after the step in flight, the second
//! stops it at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// How many stop signals the process received, shared by everything a run does. The default
/// handle never fires (tests, and commands that need no signal handling).
#[derive(Clone, Default)]
pub struct Interrupt {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    count: AtomicUsize,
    changed: Notify,
}

impl Interrupt {
    /// Listens for SIGINT and SIGTERM for the rest of the process (inside a tokio runtime).
    /// Without it, the default action of the signals (terminate at once) stays.
    pub fn listen() -> std::io::Result<Interrupt> {
        let interrupt = Interrupt::default();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut int = signal(SignalKind::interrupt())?;
            let mut term = signal(SignalKind::terminate())?;
            let handle = interrupt.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                    handle.raise();
                }
            });
        }
        #[cfg(not(unix))]
        {
            let handle = interrupt.clone();
            tokio::spawn(async move {
                while tokio::signal::ctrl_c().await.is_ok() {
                    handle.raise();
                }
            });
        }
        Ok(interrupt)
    }

    /// Records one signal (what the listener does; tests call it directly).
    pub fn raise(&self) {
        self.inner.count.fetch_add(1, Ordering::SeqCst);
        self.inner.changed.notify_waiters();
    }

    /// Asks the run to stop before the next step, as a first signal does (unless one already
    /// came); a Ctrl-C after it then stops the run at once. What a lost lock does.
    pub fn request_stop(&self) {
        let _ = self
            .inner
            .count
            .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst);
        self.inner.changed.notify_waiters();
    }

    /// True once a first signal arrived: stop before the next step.
    pub fn requested(&self) -> bool {
        self.inner.count.load(Ordering::SeqCst) >= 1
    }

    /// Resolves when a second signal arrives: stop now.
    pub async fn forced(&self) {
        loop {
            let notified = self.inner.changed.notified();
            if self.inner.count.load(Ordering::SeqCst) >= 2 {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn the_first_signal_asks_the_second_forces() {
        let interrupt = Interrupt::default();
        assert!(!interrupt.requested());
        interrupt.raise();
        assert!(interrupt.requested());
        let forced = tokio::time::timeout(Duration::from_millis(50), interrupt.forced()).await;
        assert!(forced.is_err(), "one signal does not force");
        let waiter = tokio::spawn({
            let i = interrupt.clone();
            async move { i.forced().await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        interrupt.raise();
        tokio::time::timeout(Duration::from_secs(2), waiter)
            .await
            .expect("the second signal forces")
            .unwrap();
    }
}
