//! The progress printer of `plan`, `apply` and `destroy`: every progress line of the session
//! on stderr, and, on a terminal only, one live line under them while changes are in flight,
//! redrawn every second: how long the oldest change has run, what it waits for and the last
//! reason seen (e.g. `[42s] sso.helm_release.dex: waiting for Deployment available (pod
//! dex-5d9: ContainerCreating) (+2 more in flight)`).
//!
//! The live line is drawn only when both stdout and stderr are terminals, `CI` is not set and
//! `TERM` is not `dumb`: a log (CI, a pipe, a file) gets the progress lines and nothing else.
//! What it shows comes from the progress lines themselves ([`Tracker::observe`]): a change is
//! in flight from its first `...` line to its `complete after`/`failed after`/`Fields removed
//! after`/`cancelled after` line, and a `still waiting for`
//! line says what it waits for and why.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A change is shown on the live line once it has run this long (short steps never flicker).
const SHOW_AFTER: Duration = Duration::from_secs(2);

/// Whether to draw the live line: on a terminal (stdout and stderr), not in CI, not on a dumb
/// terminal.
pub fn enabled(stdout_tty: bool, stderr_tty: bool, ci: Option<&str>, term: Option<&str>) -> bool {
    let in_ci = ci.is_some_and(|v| !v.is_empty() && v != "false" && v != "0");
    stdout_tty && stderr_tty && !in_ci && term != Some("dumb")
}

#[derive(Debug, Clone)]
struct Flight {
    started: Instant,
    what: Option<String>,
    last: Option<String>,
}

/// The changes in flight, as the progress lines tell them.
#[derive(Debug, Default)]
pub struct Tracker {
    in_flight: BTreeMap<String, Flight>,
}

impl Tracker {
    /// Takes in one progress line (`<address>: <text>`), seen at `now`.
    pub fn observe(&mut self, line: &str, now: Instant) {
        let Some((address, text)) = line.split_once(": ") else {
            return;
        };
        if address.contains(' ') || address.is_empty() {
            return;
        }
        if text.contains("complete after")
            || text.starts_with("failed after")
            || text.starts_with("cancelled after")
            || text.starts_with("Fields removed after")
        {
            self.in_flight.remove(address);
        } else if text.ends_with("...") {
            self.in_flight
                .entry(address.to_owned())
                .or_insert_with(|| Flight {
                    started: now,
                    what: None,
                    last: None,
                });
        } else if let Some(rest) = text.strip_prefix("still waiting for ")
            && let Some(flight) = self.in_flight.get_mut(address)
        {
            // "still waiting for WHAT [12s elapsed] (REASON)"
            let (what, after) = rest.split_once(" [").unwrap_or((rest, ""));
            flight.what = Some(what.to_owned());
            let reason = after
                .split_once("] (")
                .map(|(_, r)| r.strip_suffix(')').unwrap_or(r));
            if let Some(reason) = reason.filter(|r| !r.is_empty()) {
                flight.last = Some(reason.to_owned());
            }
        }
    }

    /// The live line at `now`, at most `width` characters: the change in flight longest, once
    /// it has run [`SHOW_AFTER`]; `None` when there is nothing to show.
    pub fn render(&self, now: Instant, width: usize) -> Option<String> {
        let (address, oldest) = self.in_flight.iter().min_by_key(|(_, f)| f.started)?;
        let elapsed = now.saturating_duration_since(oldest.started);
        if elapsed < SHOW_AFTER {
            return None;
        }
        let mut line = format!("[{}s] {address}: ", elapsed.as_secs());
        match &oldest.what {
            Some(what) => line.push_str(&format!("waiting for {what}")),
            None => line.push_str("in progress"),
        }
        if let Some(last) = &oldest.last {
            line.push_str(&format!(" ({last})"));
        }
        let others = self.in_flight.len() - 1;
        if others > 0 {
            line.push_str(&format!(" (+{others} more in flight)"));
        }
        Some(truncate(&line, width))
    }
}

fn truncate(line: &str, width: usize) -> String {
    if line.chars().count() <= width {
        return line.to_owned();
    }
    let mut out: String = line.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

struct Live {
    tracker: Tracker,
    /// Whether the live line is on the screen now (to be cleared before the next output).
    drawn: bool,
}

struct Printer {
    live: Option<Mutex<Live>>,
}

/// Clears the live line (when drawn) and draws it anew from the tracker.
fn redraw(live: &mut Live, out: &mut impl std::io::Write, clear_only: bool) {
    if live.drawn {
        let _ = write!(out, "\r\x1b[2K");
        live.drawn = false;
    }
    if clear_only {
        let _ = out.flush();
        return;
    }
    let width = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse::<usize>().ok())
        .unwrap_or(100)
        .max(20)
        - 1;
    if let Some(line) = live.tracker.render(Instant::now(), width) {
        let _ = write!(out, "{line}");
        live.drawn = true;
    }
    let _ = out.flush();
}

static PRINTER: OnceLock<Printer> = OnceLock::new();

fn printer() -> &'static Printer {
    PRINTER.get_or_init(|| {
        let on = enabled(
            std::io::stdout().is_terminal(),
            std::io::stderr().is_terminal(),
            std::env::var("CI").ok().as_deref(),
            std::env::var("TERM").ok().as_deref(),
        );
        if !on {
            return Printer { live: None };
        }
        std::thread::spawn(|| {
            loop {
                std::thread::sleep(Duration::from_secs(1));
                if let Some(live) = &printer().live {
                    let mut live = live.lock().expect("live line");
                    redraw(&mut live, &mut std::io::stderr().lock(), false);
                }
            }
        });
        Printer {
            live: Some(Mutex::new(Live {
                tracker: Tracker::default(),
                drawn: false,
            })),
        }
    })
}

/// Prints one progress line of the session (the callback given to it).
pub fn progress(line: &str) {
    match &printer().live {
        None => eprintln!("{line}"),
        Some(live) => {
            let mut live = live.lock().expect("live line");
            let mut err = std::io::stderr().lock();
            redraw(&mut live, &mut err, true);
            let _ = writeln!(err, "{line}");
            live.tracker.observe(line, Instant::now());
            redraw(&mut live, &mut err, false);
        }
    }
}

/// Removes the live line for good (before the run's last output).
pub fn finish() {
    if let Some(live) = PRINTER.get().and_then(|p| p.live.as_ref()) {
        let mut live = live.lock().expect("live line");
        live.tracker = Tracker::default();
        redraw(&mut live, &mut std::io::stderr().lock(), true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawn_only_on_a_terminal_outside_ci() {
        assert!(enabled(true, true, None, Some("xterm-256color")));
        assert!(!enabled(false, true, None, None), "stdout piped or a file");
        assert!(!enabled(true, false, None, None), "stderr to a log");
        assert!(!enabled(true, true, Some("true"), None), "CI");
        assert!(!enabled(true, true, Some("1"), None), "CI");
        assert!(enabled(true, true, Some("false"), None));
        assert!(!enabled(true, true, None, Some("dumb")));
    }

    #[test]
    fn the_line_follows_the_oldest_change_in_flight_with_what_it_waits_for() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut tracker = Tracker::default();
        tracker.observe("sso.helm_release.dex: Creating...", at(0));
        assert_eq!(
            tracker.render(at(1), 200),
            None,
            "a short step is not shown"
        );
        assert_eq!(
            tracker.render(at(3), 200).as_deref(),
            Some("[3s] sso.helm_release.dex: in progress")
        );
        tracker.observe("gateway.object.namespace/gateway: Creating...", at(4));
        tracker.observe(
            "sso.helm_release.dex: still waiting for Deployment available [10s elapsed] (pod dex-5d9: ContainerCreating)",
            at(10),
        );
        assert_eq!(
            tracker.render(at(12), 200).as_deref(),
            Some(
                "[12s] sso.helm_release.dex: waiting for Deployment available (pod dex-5d9: ContainerCreating) (+1 more in flight)"
            )
        );
        tracker.observe(
            "sso.helm_release.dex: Creation complete after 13.0s",
            at(13),
        );
        assert_eq!(
            tracker.render(at(14), 200).as_deref(),
            Some("[10s] gateway.object.namespace/gateway: in progress")
        );
        tracker.observe(
            "gateway.object.namespace/gateway: failed after 11.0s: refused",
            at(15),
        );
        assert_eq!(tracker.render(at(16), 200), None, "nothing in flight");
        // Lines that are not a change's own are ignored.
        tracker.observe("Apply complete! Resources: 1 added", at(17));
        tracker.observe("error: something", at(17));
        assert_eq!(tracker.render(at(18), 200), None);
    }

    #[test]
    fn a_long_line_is_cut_to_the_width() {
        let t0 = Instant::now();
        let mut tracker = Tracker::default();
        tracker.observe("mesh.helm_release.istiod: Modifying...", t0);
        let line = tracker
            .render(t0 + Duration::from_secs(5), 20)
            .expect("shown");
        assert_eq!(line.chars().count(), 20);
        assert!(line.ends_with('…'), "{line}");
    }
}
