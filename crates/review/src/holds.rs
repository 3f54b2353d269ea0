//! The requests this process holds, by review id: a decision made here wakes its waiter at
//! once; one made on another replica is seen when the waiter next reads the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct Holds {
    waiting: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Holds {
    /// Registers a waiter for `id` (before the item can be decided, so no wake-up is lost).
    pub fn register(&self, id: &str) -> Arc<Notify> {
        let notify = Arc::new(Notify::new());
        self.lock().insert(id.to_string(), Arc::clone(&notify));
        notify
    }

    /// Wakes the waiter of `id`, if this process holds it.
    pub fn wake(&self, id: &str) {
        if let Some(n) = self.lock().get(id) {
            n.notify_one();
        }
    }

    pub fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    /// How many requests wait now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Notify>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Holds {
    /// The waiter of `id`, registered now if it was not.
    pub fn register_or_get(&self, id: &str) -> Arc<Notify> {
        Arc::clone(
            self.lock()
                .entry(id.to_string())
                .or_insert_with(|| Arc::new(Notify::new())),
        )
    }
}
