//! Progress events, from the libraries that do the work to whoever shows it.
//!
//! teu's libraries (the layer pipeline, the transports) know how far along a piece of work
//! is; only the CLI knows whether that should become a progress bar, a log line every few
//! seconds, JSON for a tool, or nothing. So the libraries emit small typed [`Event`]s
//! through the [`Progress`] trait and never format anything; rendering lives in the
//! `teu` binary. A [`Reporter`] that reports to nobody costs one branch per event.
//!
//! Events are about *tasks*: a task starts (with a kind, a name and maybe a total in
//! bytes), advances (bytes done so far, monotonic), and finishes once, with an
//! [`Outcome`]. Task ids are unique per [`Reporter`] family.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What a task is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskKind {
    /// Building one layer (bytes: its uncompressed tar stream).
    Layer,
    /// Moving one blob to or from somewhere (bytes: the blob's).
    Blob,
}

impl TaskKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Layer => "layer",
            TaskKind::Blob => "blob",
        }
    }
}

/// How a task ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The work was done.
    Done,
    /// Nothing had to be done: a cache hit, a blob the destination already had.
    Skipped,
    /// It failed (the error itself travels the usual way).
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Skipped => "skipped",
            Outcome::Failed => "failed",
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    Start {
        id: u64,
        kind: TaskKind,
        name: &'a str,
        /// Bytes the task will process, when known up front.
        total: Option<u64>,
    },
    Advance {
        id: u64,
        /// Bytes processed so far.
        done: u64,
    },
    Finish {
        id: u64,
        outcome: Outcome,
        /// Bytes processed in the end.
        done: u64,
        /// A few words for humans: "cached", "mounted", "12 of 14 segments reused".
        note: &'a str,
    },
}

/// Receives events; called from any thread, so keep it quick (a renderer throttles).
pub trait Progress: Send + Sync {
    fn event(&self, event: &Event);
}

/// Where a library sends its events: cheap to clone, and reports to nobody by default.
#[derive(Clone, Default)]
pub struct Reporter {
    sink: Option<Arc<dyn Progress>>,
    ids: Arc<AtomicU64>,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.sink.is_some() {
            "Reporter(on)"
        } else {
            "Reporter(off)"
        })
    }
}

impl Reporter {
    pub fn new(sink: Arc<dyn Progress>) -> Reporter {
        Reporter {
            sink: Some(sink),
            ids: Arc::default(),
        }
    }

    /// A reporter that reports nothing.
    pub fn none() -> Reporter {
        Reporter::default()
    }

    pub fn is_on(&self) -> bool {
        self.sink.is_some()
    }

    /// Start a task; the returned handle advances and finishes it. A handle dropped
    /// without [`Task::finish`] finishes as [`Outcome::Failed`] (an error unwound it).
    pub fn start(&self, kind: TaskKind, name: &str, total: Option<u64>) -> Task {
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        if let Some(s) = &self.sink {
            s.event(&Event::Start {
                id,
                kind,
                name,
                total,
            });
        }
        Task {
            sink: self.sink.clone(),
            id,
            done: 0,
            finished: false,
        }
    }
}

/// One task being reported.
pub struct Task {
    sink: Option<Arc<dyn Progress>>,
    id: u64,
    done: u64,
    finished: bool,
}

impl Task {
    /// `done` bytes processed so far (ignored if it would go backwards).
    pub fn advance_to(&mut self, done: u64) {
        if done <= self.done {
            return;
        }
        self.done = done;
        if let Some(s) = &self.sink {
            s.event(&Event::Advance { id: self.id, done });
        }
    }

    /// `n` more bytes processed.
    pub fn advance(&mut self, n: u64) {
        self.advance_to(self.done + n);
    }

    pub fn done(&self) -> u64 {
        self.done
    }

    pub fn finish(mut self, outcome: Outcome, note: &str) {
        self.finished = true;
        if let Some(s) = &self.sink {
            s.event(&Event::Finish {
                id: self.id,
                outcome,
                done: self.done,
                note,
            });
        }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if !self.finished {
            if let Some(s) = &self.sink {
                s.event(&Event::Finish {
                    id: self.id,
                    outcome: Outcome::Failed,
                    done: self.done,
                    note: "",
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);

    impl Progress for Log {
        fn event(&self, e: &Event) {
            self.0.lock().unwrap().push(match e {
                Event::Start { id, name, .. } => format!("start {id} {name}"),
                Event::Advance { id, done } => format!("advance {id} {done}"),
                Event::Finish { id, outcome, .. } => format!("finish {id} {}", outcome.as_str()),
            });
        }
    }

    #[test]
    fn tasks_start_advance_and_finish_once() {
        let log = Arc::new(Log::default());
        let r = Reporter::new(log.clone());
        let mut a = r.start(TaskKind::Layer, "app", Some(10));
        a.advance(4);
        a.advance_to(3); // backwards: ignored
        a.advance_to(10);
        a.finish(Outcome::Done, "");
        drop(r.clone().start(TaskKind::Blob, "b", None));
        assert_eq!(
            *log.0.lock().unwrap(),
            [
                "start 0 app",
                "advance 0 4",
                "advance 0 10",
                "finish 0 done",
                "start 1 b",
                "finish 1 failed"
            ]
        );
        // Off: nothing to call, nothing panics.
        let mut t = Reporter::none().start(TaskKind::Layer, "x", None);
        t.advance(1);
        t.finish(Outcome::Skipped, "cached");
    }
}
