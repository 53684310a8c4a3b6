//! What every command prints the same way: sizes, write reports (what was skipped,
//! linked, copied, mounted, streamed or uploaded), and the stdout contract.

use teu_image::transport::{Action, WriteReport};

/// A reader that closes stdout early (`teu tags REG/app | head -1`) ends teu as it ends
/// `cat`: by SIGPIPE, quietly, instead of a panic in `println!`.
pub fn die_quietly_on_closed_stdout() {
    // SAFETY: restoring the default disposition of a signal at startup, before any thread
    // exists; Rust's runtime set it to "ignore".
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// SIGINT or SIGTERM (Ctrl-C, a CI job cancelled) during a push closes the upload
/// sessions this process has open, so none is left waiting in the registry, then ends
/// teu as the signal would (exit 130 or 143). Partial files need nothing: they are locked
/// temporaries that the next teu removes.
pub fn close_uploads_on_interrupt() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
        return;
    };
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            let closed = teu_registry::cancel_open_uploads();
            if closed > 0 {
                eprintln!("teu: interrupted: closed {closed} open upload session(s)");
            }
            std::process::exit(128 + sig);
        }
    });
}

/// One line per blob, then the totals, in the words of `report`'s destination.
pub fn print_write(r: &WriteReport, say: &dyn Fn(String)) {
    for b in &r.blobs {
        let verb = match (b.action, r.dry_run) {
            (Action::Skip, _) => "exists",
            (Action::Link, false) => "linked",
            (Action::Link, true) => "link",
            (Action::Copy, false) => "copied",
            (Action::Copy, true) => "copy",
            (Action::Mount, false) => "mounted",
            (Action::Mount, true) => "mount",
            (Action::Stream, false) => "streamed",
            (Action::Stream, true) => "stream",
            (Action::Upload, false) => "uploaded",
            (Action::Upload, true) => "upload",
        };
        let from = match b.action {
            Action::Mount | Action::Stream | Action::Copy => format!(" from {}", b.from),
            _ => String::new(),
        };
        say(format!(
            "teu: blob {} {verb} ({}){from}",
            b.digest.short(),
            bytes(b.size)
        ));
    }
    let x = &r.bytes;
    let mut parts = Vec::new();
    for (n, what) in [
        (x.skipped, "skipped"),
        (x.linked, "linked"),
        (x.copied, "copied"),
        (x.mounted, "mounted"),
        (x.streamed, "streamed"),
        (x.uploaded, "uploaded"),
    ] {
        // A registry's report names all four of its actions, even when zero.
        let registry_word = matches!(what, "skipped" | "mounted" | "streamed" | "uploaded");
        if n > 0 || (!r.local && registry_word) {
            parts.push(format!("{} {what}", bytes(n)));
        }
    }
    if parts.is_empty() {
        parts.push("nothing to move".to_string());
    }
    say(format!(
        "teu: {} {}: {}; tags: {}",
        if r.dry_run {
            "plan for"
        } else if !r.local {
            "pushed"
        } else {
            "wrote"
        },
        r.destination,
        parts.join(", "),
        if r.tags.is_empty() {
            "none".to_string()
        } else {
            r.tags.join(", ")
        }
    ));
}

pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::bytes(12), "12 B");
        assert_eq!(super::bytes(1536), "1.5 KiB");
        assert_eq!(super::bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
