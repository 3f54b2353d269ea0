//! Several worker processes on one run in a shared store (PostgreSQL), with eval's claims.
//!
//! A slot (a prompt and its attack rounds) is the unit of work: its rounds depend on each
//! other, so one process works all of them. Each slot has one extra run item, its *ticket*
//! (round [`TICKET_ROUND`], never a real round), which the processes claim with the store's
//! claims as eval's workers claim items: a claim is held under a lease that the holder
//! renews while it works, and a claim older than the lease (its holder died) is claimed
//! again by another process, which continues the slot from its stored rounds. A worker that
//! finishes a slot closes its ticket (a judgement on it saying whether the slot finished); a
//! process returns when every ticket is closed, so the first process reports a complete run.
//! A slot that failed is closed unfinished: the report counts it, and `--resume` retries it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use emguard_store::NewItem;
use serde_json::json;

use crate::RedteamError;
use crate::plan::{ROUNDS_PER_SLOT, Slot};
use crate::work::{Outcome, Worker, blocking};

/// The round number of a slot's ticket: past any real round (`MAX_REPEATS` < this).
pub const TICKET_ROUND: i64 = ROUNDS_PER_SLOT - 1;
/// The judge key of a ticket's closing record.
const TICKET_JUDGE_KEY: &str = "redteam-slot-ticket";
/// How long a process waits before looking again for tickets others hold.
const POLL: Duration = Duration::from_secs(1);

/// Whether a run item is a slot's ticket rather than an answer.
pub fn is_ticket(seq: i64) -> bool {
    seq % ROUNDS_PER_SLOT == TICKET_ROUND
}

fn ticket_key(run_id: &str, slot: usize) -> String {
    format!("redteam-slot:{run_id}:{slot}")
}

/// Aborts a background task when dropped (on every path out, errors included).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Worker {
    /// Works slots of the run claimed in the shared store, `name` in the claims, until every
    /// slot of the run is closed by this or another process.
    pub async fn work_shared(
        &self,
        name: &str,
        lease: Duration,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<Outcome, RedteamError> {
        let variants = self.config.variants();
        let slots = self.config.slots(&variants);
        // Every process adds the tickets; ones already there are left as they are.
        let tickets: Vec<NewItem> = slots
            .iter()
            .map(|s: &Slot| NewItem {
                seq: s.seq(TICKET_ROUND as usize),
                sample_key: ticket_key(&self.run_id, s.index),
                judge_key: TICKET_JUDGE_KEY.into(),
                spec: json!({"slot": s.index}),
            })
            .collect();
        let store = self.store.clone();
        let run_id = self.run_id.clone();
        blocking(move || store.add_items(&run_id, &tickets)).await?;

        let held: Arc<Mutex<Vec<i64>>> = Arc::default();
        let _renewing = AbortOnDrop(self.renew_while_held(name, lease, held.clone()));
        let claim_size = self.concurrency.max(1);
        let mut outcome = Outcome::default();
        loop {
            let (store, run_id, worker) =
                (self.store.clone(), self.run_id.clone(), name.to_string());
            let claimed =
                blocking(move || store.claim(&run_id, &worker, claim_size, lease)).await?;
            // Claims may also catch another process's answer between its storing and its
            // scoring: that is not work for this one, and the claim does not stop the other.
            let mine: HashSet<usize> = claimed
                .iter()
                .filter(|item| is_ticket(item.seq))
                .map(|item| (item.seq / ROUNDS_PER_SLOT) as usize)
                .collect();
            if mine.is_empty() {
                let (store, run_id) = (self.store.clone(), self.run_id.clone());
                let open = blocking(move || store.items(&run_id))
                    .await?
                    .iter()
                    .filter(|item| is_ticket(item.seq) && item.judgement.is_none())
                    .count();
                if open == 0 {
                    break;
                }
                tokio::time::sleep(POLL).await;
                continue;
            }
            *held.lock().unwrap_or_else(|p| p.into_inner()) = mine
                .iter()
                .map(|&slot| slots[slot].seq(TICKET_ROUND as usize))
                .collect();
            progress(&format!("{name}: working {} slots", mine.len()));
            let (done, finished) = self.work_slots(Some(&mine), progress).await?;
            outcome.scored += done.scored;
            outcome.failed += done.failed;
            let (store, run_id) = (self.store.clone(), self.run_id.clone());
            blocking(move || {
                for slot in mine {
                    let verdict = json!({"finished": finished[slot]});
                    store.put_judgement(&ticket_key(&run_id, slot), TICKET_JUDGE_KEY, &verdict)?;
                }
                Ok(())
            })
            .await?;
            held.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
        Ok(outcome)
    }

    /// Every third of the lease, starts the lease of the tickets this process works on again:
    /// a slot's attack may take longer than the lease.
    fn renew_while_held(
        &self,
        name: &str,
        lease: Duration,
        held: Arc<Mutex<Vec<i64>>>,
    ) -> tokio::task::JoinHandle<()> {
        let (store, run_id, name) = (self.store.clone(), self.run_id.clone(), name.to_string());
        let every = (lease / 3).max(Duration::from_millis(20));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let seqs = held.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let (store, run_id, name) = (store.clone(), run_id.clone(), name.clone());
                if let Err(err) = blocking(move || store.renew_claims(&run_id, &name, &seqs)).await
                {
                    tracing::warn!("renewing claims failed: {err}");
                }
            }
        })
    }
}
