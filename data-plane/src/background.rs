//! Configuration work off the request path. One thread per node, at a low CPU priority, decodes, builds
//! and stores snapshots and frees the configurations requests no longer use. On a busy node with few
//! cores, applying a 10,000-route snapshot then runs in the time requests leave idle instead of delaying
//! them; when the node is saturated the apply still progresses, only more slowly.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, error};

/// Nice value of the configuration and sync threads: requests (nice 0) win the CPU whenever both are
/// ready. When the node is saturated these threads still get about 1.5% of a core, so a 10,000-route
/// snapshot (about 50 ms of work) lands within a few seconds instead of delaying requests.
pub const CONFIG_THREAD_NICE: i32 = 19;

/// How often configurations still held by in-flight requests are checked for release.
const RELEASE_CHECK: Duration = Duration::from_millis(50);

type Task = Box<dyn FnOnce() + Send>;
type Retired = Arc<dyn Any + Send + Sync>;

enum Job {
    Run(Task),
    Retire(Retired),
}

/// A handle to the node's configuration thread; the thread ends when the handle is dropped.
pub struct Background {
    tx: mpsc::Sender<Job>,
}

impl Background {
    /// Starts the thread.
    pub fn start() -> std::io::Result<Background> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("portcullis-config".into())
            .spawn(move || work(rx))?;
        Ok(Background { tx })
    }

    /// Runs `f` on the configuration thread and waits for its result without blocking the runtime.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, String> {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(Job::Run(Box::new(move || {
                let _ = done_tx.send(f());
            })))
            .map_err(|_| "the configuration thread has stopped".to_string())?;
        done_rx
            .await
            .map_err(|_| "the configuration work failed before it finished".to_string())
    }

    /// Hands over a configuration that has just been replaced. Requests that started on it keep it; its
    /// memory is freed on the configuration thread once the last of them has finished, so a large
    /// configuration is never torn down on a request's time.
    pub fn retire(&self, old: Retired) {
        // If the thread is gone the configuration is simply dropped here.
        let _ = self.tx.send(Job::Retire(old));
    }
}

fn work(rx: mpsc::Receiver<Job>) {
    lower_priority();
    let mut retiring: Vec<Retired> = Vec::new();
    loop {
        let job = if retiring.is_empty() {
            match rx.recv() {
                Ok(job) => Some(job),
                Err(_) => return,
            }
        } else {
            match rx.recv_timeout(RELEASE_CHECK) {
                Ok(job) => Some(job),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        };
        match job {
            Some(Job::Run(task)) => {
                // A panic is contained to its task: the caller sees its result channel close.
                let outcome = std::panic::catch_unwind(AssertUnwindSafe(task));
                if outcome.is_err() {
                    error!("configuration work panicked; the current config stays live");
                }
            }
            Some(Job::Retire(old)) => retiring.push(old),
            None => {}
        }
        // Only this thread and requests hold a retired config, and no new request can obtain one, so a
        // count of one is final.
        retiring.retain(|c| Arc::strong_count(c) > 1);
    }
}

/// Lowers the calling thread's CPU priority to [`CONFIG_THREAD_NICE`] (Linux; elsewhere a no-op).
#[cfg(target_os = "linux")]
pub fn lower_priority() {
    // On Linux, PRIO_PROCESS with a thread id sets that thread's nice value only.
    let tid = rustix::thread::gettid();
    // A thread started under a higher nice value (the whole process reniced) keeps it.
    let current = rustix::process::getpriority_process(Some(tid)).unwrap_or(0);
    if current >= CONFIG_THREAD_NICE {
        return;
    }
    if let Err(e) = rustix::process::setpriority_process(Some(tid), CONFIG_THREAD_NICE) {
        debug!(error = %e, "cannot lower the configuration thread's priority");
    }
}

/// Lowers the calling thread's CPU priority (Linux only).
#[cfg(not(target_os = "linux"))]
pub fn lower_priority() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_work_and_survives_a_panicking_task() {
        let bg = Background::start().unwrap();
        assert_eq!(bg.run(|| 40 + 2).await.unwrap(), 42);
        let err = bg.run(|| -> u32 { panic!("boom") }).await.unwrap_err();
        assert!(err.contains("failed before it finished"), "{err}");
        assert_eq!(bg.run(|| "still alive").await.unwrap(), "still alive");
    }

    #[tokio::test]
    async fn a_retired_config_is_freed_once_its_last_request_is_done() {
        let bg = Background::start().unwrap();
        let config = Arc::new(vec![0u8; 1024]);
        let held_by_request = config.clone();
        let weak = Arc::downgrade(&config);
        bg.retire(config);
        // Still in use: the request's copy keeps it alive.
        bg.run(|| ()).await.unwrap();
        assert!(weak.upgrade().is_some());
        drop(held_by_request);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while weak.strong_count() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "retired config never freed"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_thread_runs_at_a_lower_priority() {
        let bg = Background::start().unwrap();
        let nice = bg
            .run(|| rustix::process::getpriority_process(Some(rustix::thread::gettid())))
            .await
            .unwrap()
            .unwrap();
        assert!(nice >= CONFIG_THREAD_NICE, "nice {nice}");
    }
}
