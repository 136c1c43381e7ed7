//! The progress printer of `plan`, `apply` and `destroy`: every progress line of the session
//! on stderr, and, on a terminal only, one live line under them while changes are in flight,
//! redrawn every second: how long the oldest change has run, what it waits for and the last
//! reason seen (e.g. `[42s] sso.helm_release.dex: waiting for Deployment available (pod
//! dex-5d9: ContainerCreating) (+2 more in flight)`).
//!
//! The live line is drawn only when both stdout and stderr are terminals, `CI` is not set and
//! `TERM` is not `dumb`: a log (CI, a pipe, a file) gets the progress lines and nothing else.
//! What it shows comes from the session's progress events ([`Tracker::observe`]): a change is
//! in flight from its `Started` to its `Done`, `Failed` or `Cancelled`, and a `Waiting` says
//! what it waits for and why.
//!
//! With `ENVCTL_PROGRESS=json`, each event is printed as one JSON object per line instead (its
//! serde form, `live::Progress`), for a program to read (`cargo xtask bench`), and no live line.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use live::Progress;

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
    /// Takes in one progress event, seen at `now`.
    pub fn observe(&mut self, event: &Progress, now: Instant) {
        match event {
            Progress::Started { address, .. } => {
                self.in_flight
                    .entry(address.clone())
                    .or_insert_with(|| Flight {
                        started: now,
                        what: None,
                        last: None,
                    });
            }
            Progress::Done { address, .. }
            | Progress::Failed { address, .. }
            | Progress::Cancelled { address, .. } => {
                self.in_flight.remove(address);
            }
            Progress::Waiting {
                address,
                what,
                reason,
                ..
            } => {
                if let Some(flight) = self.in_flight.get_mut(address) {
                    flight.what = Some(what.clone());
                    if !reason.is_empty() {
                        flight.last = Some(reason.clone());
                    }
                }
            }
            _ => {}
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

/// Whether `ENVCTL_PROGRESS=json` asks for the events as JSON lines.
fn json_wanted() -> bool {
    static JSON: OnceLock<bool> = OnceLock::new();
    *JSON.get_or_init(|| std::env::var("ENVCTL_PROGRESS").is_ok_and(|v| v == "json"))
}

/// Prints one progress event of the session (the callback given to it): its line, or its JSON
/// form with `ENVCTL_PROGRESS=json`.
pub fn progress(event: &Progress) {
    if json_wanted() {
        match serde_json::to_string(event) {
            Ok(json) => eprintln!("{json}"),
            Err(_) => eprintln!("{event}"),
        }
        return;
    }
    let line = event.to_string();
    match &printer().live {
        None => eprintln!("{line}"),
        Some(live) => {
            let mut live = live.lock().expect("live line");
            let mut err = std::io::stderr().lock();
            redraw(&mut live, &mut err, true);
            let _ = writeln!(err, "{line}");
            live.tracker.observe(event, Instant::now());
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

    fn started(address: &str) -> Progress {
        Progress::Started {
            address: address.into(),
            step: live::Step::Create,
        }
    }

    #[test]
    fn the_line_follows_the_oldest_change_in_flight_with_what_it_waits_for() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut tracker = Tracker::default();
        tracker.observe(&started("sso.helm_release.dex"), at(0));
        assert_eq!(
            tracker.render(at(1), 200),
            None,
            "a short step is not shown"
        );
        assert_eq!(
            tracker.render(at(3), 200).as_deref(),
            Some("[3s] sso.helm_release.dex: in progress")
        );
        tracker.observe(&started("gateway.object.namespace/gateway"), at(4));
        tracker.observe(
            &Progress::Waiting {
                address: "sso.helm_release.dex".into(),
                what: "Deployment available".into(),
                elapsed: Duration::from_secs(10),
                reason: "pod dex-5d9: ContainerCreating".into(),
            },
            at(10),
        );
        assert_eq!(
            tracker.render(at(12), 200).as_deref(),
            Some(
                "[12s] sso.helm_release.dex: waiting for Deployment available (pod dex-5d9: ContainerCreating) (+1 more in flight)"
            )
        );
        tracker.observe(
            &Progress::Done {
                address: "sso.helm_release.dex".into(),
                step: live::Step::Create,
                elapsed: Duration::from_secs(13),
            },
            at(13),
        );
        assert_eq!(
            tracker.render(at(14), 200).as_deref(),
            Some("[10s] gateway.object.namespace/gateway: in progress")
        );
        // A warning or a recovery does not end a change.
        tracker.observe(
            &Progress::Recovered {
                address: "gateway.object.namespace/gateway".into(),
            },
            at(14),
        );
        assert!(tracker.render(at(14), 200).is_some());
        tracker.observe(
            &Progress::Failed {
                address: "gateway.object.namespace/gateway".into(),
                elapsed: Duration::from_secs(11),
                error: "refused".into(),
            },
            at(15),
        );
        assert_eq!(tracker.render(at(16), 200), None, "nothing in flight");
        // A wait of a change not in flight (a destroy's) starts nothing.
        tracker.observe(
            &Progress::Waiting {
                address: "gateway.object.namespace/gateway".into(),
                what: "its deletion".into(),
                elapsed: Duration::from_secs(10),
                reason: String::new(),
            },
            at(17),
        );
        assert_eq!(tracker.render(at(18), 200), None);
    }

    #[test]
    fn a_long_line_is_cut_to_the_width() {
        let t0 = Instant::now();
        let mut tracker = Tracker::default();
        tracker.observe(
            &Progress::Started {
                address: "mesh.helm_release.istiod".into(),
                step: live::Step::Modify,
            },
            t0,
        );
        let line = tracker
            .render(t0 + Duration::from_secs(5), 20)
            .expect("shown");
        assert_eq!(line.chars().count(), 20);
        assert!(line.ends_with('…'), "{line}");
    }
}
