//! Progress on the command line: a bar with an ETA when stderr is a terminal, otherwise quiet log lines (one per
//! phase and about every tenth of it), so that logs of CI and of the daemon stay readable.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::progress::Progress;

pub enum Reporter {
    Bar(Mutex<Option<ProgressBar>>),
    Lines(Mutex<LineState>),
}

pub struct LineState {
    phase: String,
    total: Option<u64>,
    started: Instant,
    next_report: u64,
    last_line: Instant,
}

impl Reporter {
    pub fn for_stderr() -> Reporter {
        if std::io::stderr().is_terminal() {
            Reporter::Bar(Mutex::new(None))
        } else {
            Reporter::Lines(Mutex::new(LineState {
                phase: String::new(),
                total: None,
                started: Instant::now(),
                next_report: 0,
                last_line: Instant::now(),
            }))
        }
    }
}

impl Reporter {
    pub fn start_phase(&self, phase: &str, total: u64) {
        self.start(phase, Some(total));
    }
}

impl Progress for Reporter {
    fn start(&self, phase: &str, total: Option<u64>) {
        match self {
            Reporter::Bar(bar) => {
                let new = match total {
                    Some(n) => ProgressBar::new(n).with_style(
                        ProgressStyle::with_template("{msg:>14} [{bar:30}] {pos}/{len} {elapsed_precise} (eta {eta})")
                            .expect("static template")
                            .progress_chars("=> "),
                    ),
                    None => ProgressBar::new_spinner().with_style(
                        ProgressStyle::with_template("{msg:>14} {spinner} {pos} {elapsed_precise}").expect("static template"),
                    ),
                };
                new.set_message(phase.to_owned());
                new.enable_steady_tick(Duration::from_millis(200));
                if let Some(old) = bar.lock().expect("progress lock").replace(new) {
                    old.finish_and_clear();
                }
            }
            Reporter::Lines(state) => {
                let mut s = state.lock().expect("progress lock");
                *s = LineState { phase: phase.to_owned(), total, started: Instant::now(), next_report: 0, last_line: Instant::now() };
                match total {
                    Some(n) => eprintln!("{phase}: 0/{n}"),
                    None => eprintln!("{phase}: started"),
                }
            }
        }
    }

    fn advance(&self, done: u64) {
        match self {
            Reporter::Bar(bar) => {
                if let Some(bar) = bar.lock().expect("progress lock").as_ref() {
                    bar.set_position(done);
                }
            }
            Reporter::Lines(state) => {
                let mut s = state.lock().expect("progress lock");
                // About every tenth, and not more than once every two seconds: short work prints start and end only.
                if done >= s.next_report && s.last_line.elapsed() >= Duration::from_secs(2) {
                    let step = s.total.map_or(10, |n| (n / 10).max(1));
                    s.next_report = done + step;
                    s.last_line = Instant::now();
                    if done > 0 {
                        let total = s.total.map_or(String::new(), |n| format!("/{n}"));
                        eprintln!("{}: {done}{total} ({:.1} s)", s.phase, s.started.elapsed().as_secs_f64());
                    }
                }
            }
        }
    }

    fn finish(&self) {
        match self {
            Reporter::Bar(bar) => {
                if let Some(bar) = bar.lock().expect("progress lock").take() {
                    bar.finish_and_clear();
                }
            }
            Reporter::Lines(state) => {
                let s = state.lock().expect("progress lock");
                eprintln!("{}: done in {:.1} s", s.phase, s.started.elapsed().as_secs_f64());
            }
        }
    }
}
