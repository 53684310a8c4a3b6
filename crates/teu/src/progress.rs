//! Rendering progress events ([`teu_progress`]) on stderr: bars on a terminal, a plain
//! line now and then elsewhere (CI logs), one JSON object per line for tools, or nothing.
//! stdout is never touched: it carries the digest (or `--json`) alone.
//!
//! - **tty**: one indicatif bar per task being worked on, with bytes, rate and ETA; a
//!   task's bar goes away when it finishes (the command's summary says how it ended).
//! - **plain**: a line once a task has been working for [`PLAIN_FIRST`] (quick work and
//!   cache hits are in the command's summary), then at most one every [`PLAIN_EVERY`].
//! - **json**: every start and finish, and advances at most every [`JSON_EVERY`] per
//!   task; in this mode the human summary is left out of stderr, so every line parses.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use teu_progress::{Event, Outcome, Progress, Reporter, TaskKind};

use crate::output::bytes;

const PLAIN_EVERY: Duration = Duration::from_secs(5);
/// A task quicker than this prints no plain line at all: the summary says it all.
const PLAIN_FIRST: Duration = Duration::from_secs(1);
const JSON_EVERY: Duration = Duration::from_millis(250);

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Bars when stderr is a terminal, plain lines otherwise
    Auto,
    /// Progress bars (drawn only on a terminal)
    Tty,
    /// A plain line per step, at most every few seconds (CI logs)
    Plain,
    /// One JSON event per line on stderr, and nothing else there
    Json,
    /// No progress at all
    None,
}

#[derive(Args, Clone, Debug)]
pub struct ProgressArgs {
    /// How to show progress on stderr: auto, tty, plain, json or none
    #[arg(
        long,
        value_enum,
        value_name = "MODE",
        env = "TEU_PROGRESS",
        default_value = "auto"
    )]
    pub progress: Mode,
}

impl ProgressArgs {
    /// The mode in effect: `auto` resolved against stderr, `--quiet` meaning none unless
    /// asked for explicitly.
    pub fn mode(&self, quiet: bool) -> Mode {
        match self.progress {
            Mode::Auto if quiet => Mode::None,
            Mode::Auto if std::io::stderr().is_terminal() => Mode::Tty,
            Mode::Auto => Mode::Plain,
            m => m,
        }
    }

    pub fn reporter(&self, quiet: bool) -> Reporter {
        match self.mode(quiet) {
            Mode::Tty => Reporter::new(Arc::new(Bars::new())),
            Mode::Plain => Reporter::new(Arc::new(Plain::default())),
            Mode::Json => Reporter::new(Arc::new(Json::default())),
            Mode::None | Mode::Auto => Reporter::none(),
        }
    }
}

fn label(kind: TaskKind, name: &str) -> String {
    match kind {
        TaskKind::Layer => format!("layer {name:?}"),
        TaskKind::Blob => format!("blob {name}"),
    }
}

struct Bars {
    multi: indicatif::MultiProgress,
    bars: Mutex<HashMap<u64, indicatif::ProgressBar>>,
}

impl Bars {
    fn new() -> Bars {
        Bars {
            multi: indicatif::MultiProgress::with_draw_target(
                indicatif::ProgressDrawTarget::stderr(),
            ),
            bars: Mutex::new(HashMap::new()),
        }
    }
}

impl Progress for Bars {
    fn event(&self, e: &Event) {
        let mut bars = self.bars.lock().expect("progress bars");
        match *e {
            Event::Start {
                id,
                kind,
                name,
                total,
            } => {
                let bar = match total {
                    Some(t) => indicatif::ProgressBar::new(t).with_style(
                        indicatif::ProgressStyle::with_template(
                            "{prefix:.bold} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
                        )
                        .expect("a valid template")
                        .progress_chars("=> "),
                    ),
                    None => indicatif::ProgressBar::new_spinner().with_style(
                        indicatif::ProgressStyle::with_template(
                            "{prefix:.bold} {spinner} {bytes} {binary_bytes_per_sec}",
                        )
                        .expect("a valid template"),
                    ),
                };
                let bar = self.multi.add(bar.with_prefix(label(kind, name)));
                bar.enable_steady_tick(Duration::from_millis(200));
                bars.insert(id, bar);
            }
            Event::Advance { id, done } => {
                if let Some(b) = bars.get(&id) {
                    b.set_position(done);
                }
            }
            Event::Finish { id, .. } => {
                if let Some(b) = bars.remove(&id) {
                    b.finish_and_clear();
                    self.multi.remove(&b);
                }
            }
        }
    }
}

struct PlainTask {
    label: String,
    total: Option<u64>,
    started: Instant,
    /// When the last line was printed (`None`: no line yet, e.g. a cache hit so far).
    said: Option<Instant>,
}

#[derive(Default)]
struct Plain {
    tasks: Mutex<HashMap<u64, PlainTask>>,
}

impl Progress for Plain {
    fn event(&self, e: &Event) {
        let mut tasks = self.tasks.lock().expect("progress tasks");
        match *e {
            Event::Start {
                id,
                kind,
                name,
                total,
            } => {
                tasks.insert(
                    id,
                    PlainTask {
                        label: label(kind, name),
                        total,
                        started: Instant::now(),
                        said: None,
                    },
                );
            }
            Event::Advance { id, done } => {
                let Some(t) = tasks.get_mut(&id) else { return };
                let now = Instant::now();
                match t.said {
                    None if now - t.started < PLAIN_FIRST => {}
                    None => {
                        let of = t
                            .total
                            .map(|n| format!(", {}", bytes(n)))
                            .unwrap_or_default();
                        eprintln!("teu: {}: working{of}", t.label);
                        t.said = Some(now);
                    }
                    Some(at) if now - at >= PLAIN_EVERY => {
                        let secs = (now - t.started).as_secs_f64().max(1e-3);
                        let rate = bytes((done as f64 / secs) as u64);
                        let of = match t.total {
                            Some(n) if n > 0 => format!(
                                " of {} ({}%)",
                                bytes(n),
                                (done as u128 * 100 / n as u128).min(100)
                            ),
                            _ => String::new(),
                        };
                        eprintln!("teu: {}: {}{of}, {rate}/s", t.label, bytes(done));
                        t.said = Some(now);
                    }
                    Some(_) => {}
                }
            }
            Event::Finish { id, outcome, .. } => {
                let Some(t) = tasks.remove(&id) else { return };
                // A task that printed a line says how it ended; the rest (cache hits,
                // quick work) are in the command's summary.
                if t.said.is_some() && outcome != Outcome::Failed {
                    eprintln!(
                        "teu: {}: {} in {:.1}s",
                        t.label,
                        outcome.as_str(),
                        t.started.elapsed().as_secs_f64()
                    );
                }
            }
        }
    }
}

#[derive(Default)]
struct Json {
    /// When each task's last advance was printed.
    last: Mutex<HashMap<u64, Instant>>,
}

impl Progress for Json {
    fn event(&self, e: &Event) {
        let line = match *e {
            Event::Start {
                id,
                kind,
                name,
                total,
            } => serde_json::json!({
                "event": "start", "id": id, "kind": kind.as_str(), "name": name, "total": total,
            }),
            Event::Advance { id, done } => {
                let mut last = self.last.lock().expect("progress times");
                let now = Instant::now();
                if last.get(&id).is_some_and(|t| now - *t < JSON_EVERY) {
                    return;
                }
                last.insert(id, now);
                serde_json::json!({"event": "advance", "id": id, "done": done})
            }
            Event::Finish {
                id,
                outcome,
                done,
                note,
            } => {
                self.last.lock().expect("progress times").remove(&id);
                serde_json::json!({
                    "event": "finish", "id": id, "outcome": outcome.as_str(), "done": done, "note": note,
                })
            }
        };
        // One write per line, so lines from several threads never interleave.
        let mut text = line.to_string();
        text.push('\n');
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

/// A JSON line for a warning, in `--progress json` mode (where stderr holds JSON only).
pub fn json_warning(message: &str) {
    let mut text = serde_json::json!({"event": "warning", "message": message}).to_string();
    text.push('\n');
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// `artifact` with every layer's blob source reporting a task per blob read through it
/// (an upload, a stream between registries, a copy into a layout or archive). Blobs a
/// sink only names (skipped, mounted, hard-linked) are never read and report nothing.
pub fn watch_blobs(artifact: teu_image::Artifact, reporter: &Reporter) -> teu_image::Artifact {
    use teu_image::{Artifact, Image, ImageIndex};
    if !reporter.is_on() {
        return artifact;
    }
    fn image(mut img: Image, r: &Reporter) -> Image {
        for l in &mut img.layers {
            l.source = Arc::new(Watched {
                inner: Arc::clone(&l.source),
                size: (l.descriptor.digest.clone(), l.descriptor.size),
                reporter: r.clone(),
            });
        }
        img
    }
    fn index(mut ix: ImageIndex, r: &Reporter) -> ImageIndex {
        ix.images = ix.images.into_iter().map(|i| image(i, r)).collect();
        ix.indexes = ix.indexes.into_iter().map(|i| index(i, r)).collect();
        ix
    }
    match artifact {
        Artifact::Image(i) => Artifact::Image(image(i, reporter)),
        Artifact::Index(i) => Artifact::Index(index(i, reporter)),
    }
}

/// A layer's blob source that reports reads of its blob.
#[derive(Debug)]
struct Watched {
    inner: Arc<dyn teu_image::BlobSource>,
    /// The layer's digest and size (a source may serve other blobs too: no total then).
    size: (teu_oci::Digest, u64),
    reporter: Reporter,
}

impl teu_image::BlobSource for Watched {
    fn open(
        &self,
        digest: &teu_oci::Digest,
    ) -> Result<Box<dyn std::io::Read + Send>, teu_image::ImageError> {
        let inner = self.inner.open(digest)?;
        let total = (*digest == self.size.0).then_some(self.size.1);
        let task = self.reporter.start(TaskKind::Blob, &digest.short(), total);
        Ok(Box::new(WatchedRead {
            inner,
            task: Some(task),
            total,
        }))
    }
    fn open_manifest(
        &self,
        digest: &teu_oci::Digest,
    ) -> Result<Box<dyn std::io::Read + Send>, teu_image::ImageError> {
        self.inner.open_manifest(digest)
    }
    fn local_path(&self, digest: &teu_oci::Digest) -> Option<std::path::PathBuf> {
        self.inner.local_path(digest)
    }
    fn name(&self) -> String {
        self.inner.name()
    }
    fn registry_repository(&self) -> Option<(&str, &str)> {
        self.inner.registry_repository()
    }
    fn linkable_path(&self, digest: &teu_oci::Digest) -> Option<std::path::PathBuf> {
        self.inner.linkable_path(digest)
    }
}

struct WatchedRead {
    inner: Box<dyn std::io::Read + Send>,
    /// Finished (done) once the whole blob was read; dropped before, it reports a failure.
    task: Option<teu_progress::Task>,
    total: Option<u64>,
}

impl std::io::Read for WatchedRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(t) = &mut self.task {
            t.advance(n as u64);
            let end = (n == 0 && !buf.is_empty()) || self.total.is_some_and(|s| t.done() >= s);
            if end {
                self.task.take().expect("a task").finish(Outcome::Done, "");
            }
        }
        Ok(n)
    }
}
