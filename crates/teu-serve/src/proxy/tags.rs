//! When each proxied tag was last confirmed by its upstream. In memory only: after a
//! restart every tag is revalidated once (one HEAD), and served stale if the upstream is
//! down, which is the safe direction to forget in. The lock guards a map lookup, never
//! an upstream call.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct TagClock {
    checked: Mutex<HashMap<(String, String), Instant>>,
}

impl TagClock {
    pub fn fresh(&self, repo: &str, tag: &str, ttl: Duration) -> bool {
        self.checked
            .lock()
            .unwrap()
            .get(&(repo.to_string(), tag.to_string()))
            .is_some_and(|t| t.elapsed() < ttl)
    }

    pub fn confirmed(&self, repo: &str, tag: &str) {
        let mut m = self.checked.lock().unwrap();
        // Bounded by the tags clients ask for; old entries go when it grows large.
        if m.len() > 100_000 {
            m.retain(|_, t| t.elapsed() < Duration::from_secs(3600));
        }
        m.insert((repo.to_string(), tag.to_string()), Instant::now());
    }
}
