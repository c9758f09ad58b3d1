//! CPU priority of background work: analyses compute below the threads that answer requests, so that a simple
//! query does not wait behind one, and yet no analysis starves. The threads that serve WebSocket subscribers can
//! run the same way (`http.rs`, `websocket.subscriber_nice`; off by default).
//!
//! On Linux a background thread starts at `SCHED_IDLE`: it runs only when no ordinary thread wants its core, and
//! the kernel preempts it the moment a request's thread wakes. (An ordinary thread at a higher niceness is not
//! preempted at once: the scheduler may let it run out its slice, a few milliseconds, which is what a simple query
//! would wait.) Alone, `SCHED_IDLE` would starve an analysis while requests keep the core busy, so a watchdog
//! thread looks at every background thread each [`TICK`], and raises one that got less than [`STARVED`] of a core
//! over the tick to an ordinary thread `nice` below the requests, where it still weighs about a tenth of a request's
//! thread (at niceness 10) and finishes by its deadline.
//!
//! Leaving `SCHED_IDLE` needs `CAP_SYS_NICE` or an `RLIMIT_NICE` that allows the niceness. Without either,
//! background threads start at that niceness instead (never starved, but a query may wait up to a slice behind an
//! analysis), and the service says so at start-up. With `nice = 0`, and elsewhere than Linux, they are ordinary
//! threads.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How often the watchdog looks at the background threads, while there are any.
pub const TICK: Duration = Duration::from_millis(100);

/// The share of a core under which a background thread counts as starved over a tick.
pub const STARVED: f64 = 0.05;

/// How background threads are scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `SCHED_IDLE`, raised to the niceness when starved.
    Idle,
    /// Ordinary threads at the niceness from the start (this process may not leave `SCHED_IDLE`).
    Nice,
    /// Ordinary threads at the process's priority (`nice = 0`, or not Linux).
    Normal,
}

/// Runs work on threads of its own below the priority of the threads that answer requests.
pub struct Background {
    /// How much nicer than the process background threads are, when they are ordinary threads.
    nice: u8,
    mode: Mode,
    watched: Arc<Mutex<Watched>>,
}

impl std::fmt::Debug for Background {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Background").field("nice", &self.nice).field("mode", &self.mode).finish_non_exhaustive()
    }
}

/// The background threads the watchdog looks after, and whether it runs.
#[derive(Default)]
struct Watched {
    threads: Vec<Watch>,
    watchdog: bool,
}

/// One background thread at `SCHED_IDLE`: where its CPU clock stood when the watchdog last looked.
struct Watch {
    id: u64,
    thread: os::Thread,
    seen: Instant,
    cpu: Duration,
    raised: bool,
}

impl Background {
    /// Background threads `nice` below the process (0 to 19); finds out once whether this process may use
    /// `SCHED_IDLE` (see the module's documentation) and logs which mode it runs in.
    pub fn new(nice: u8) -> Self {
        let mode = if nice == 0 { Mode::Normal } else { os::mode(nice) };
        match mode {
            Mode::Idle => {
                tracing::debug!(nice, "analyses compute at SCHED_IDLE, raised to niceness +{nice} if starved")
            }
            Mode::Nice => tracing::warn!(
                nice,
                "analyses compute at niceness +{nice}, not SCHED_IDLE: leaving SCHED_IDLE needs CAP_SYS_NICE or an \
                 RLIMIT_NICE of at least {} (`ulimit -e`; systemd: LimitNICE=); on a busy core a simple query may \
                 then wait a few milliseconds behind an analysis",
                20 - i32::from(nice.min(19))
            ),
            Mode::Normal => tracing::debug!("analyses compute at the priority of requests"),
        }
        Self { nice, mode, watched: Arc::default() }
    }

    /// How background threads are scheduled in this process.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Runs `work` on a thread of its own at background priority.
    pub fn spawn(&self, work: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
        let (mode, nice, watched) = (self.mode, self.nice, self.watched.clone());
        std::thread::Builder::new().name("stakegraph-analysis".into()).spawn(move || {
            let _watch = match mode {
                Mode::Idle => os::to_idle().then(|| watch(&watched, nice)),
                Mode::Nice => {
                    os::to_niceness(None, nice);
                    None
                }
                Mode::Normal => None,
            };
            work();
        })?;
        Ok(())
    }

    /// Lowers the calling thread, for the rest of its life, as [`Background::spawn`] lowers the threads it starts:
    /// for threads that others start, such as the workers of a runtime (call it when each starts). A thread the
    /// watchdog raises stays at the niceness.
    pub fn lower_current_thread(&self) {
        thread_local! {
            /// Takes this thread off the watchdog's list when it ends.
            static WATCHED: std::cell::RefCell<Option<Unwatch>> = const { std::cell::RefCell::new(None) };
        }
        match self.mode {
            Mode::Idle => {
                if os::to_idle() {
                    let unwatch = watch(&self.watched, self.nice);
                    WATCHED.with(|watched| *watched.borrow_mut() = Some(unwatch));
                }
            }
            Mode::Nice => _ = os::to_niceness(None, self.nice),
            Mode::Normal => {}
        }
    }
}

/// Takes the calling thread off the watchdog's list when it ends.
struct Unwatch {
    id: u64,
    watched: Arc<Mutex<Watched>>,
}

impl Drop for Unwatch {
    fn drop(&mut self) {
        let mut watched = self.watched.lock().unwrap_or_else(PoisonError::into_inner);
        watched.threads.retain(|watch| watch.id != self.id);
    }
}

/// Puts the calling thread on the watchdog's list, starting the watchdog if it does not run.
fn watch(watched: &Arc<Mutex<Watched>>, nice: u8) -> Unwatch {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let thread = os::Thread::current();
    let cpu = thread.cpu_time();
    let mut state = watched.lock().unwrap_or_else(PoisonError::into_inner);
    state.threads.push(Watch { id, thread, seen: Instant::now(), cpu, raised: false });
    if !state.watchdog {
        let for_watchdog = watched.clone();
        let started =
            std::thread::Builder::new().name("stakegraph-watchdog".into()).spawn(move || watchdog(&for_watchdog, nice));
        match started {
            Ok(_) => state.watchdog = true,
            Err(error) => tracing::error!(%error, "cannot start the analysis watchdog; starved analyses stay idle"),
        }
    }
    Unwatch { id, watched: watched.clone() }
}

/// Every [`TICK`], raises each watched thread that got less than [`STARVED`] of a core since it last looked; ends
/// when no thread is left to watch.
fn watchdog(watched: &Mutex<Watched>, nice: u8) {
    loop {
        std::thread::sleep(TICK);
        let mut state = watched.lock().unwrap_or_else(PoisonError::into_inner);
        if state.threads.is_empty() {
            state.watchdog = false;
            return;
        }
        let now = Instant::now();
        for watch in state.threads.iter_mut().filter(|watch| !watch.raised) {
            let wall = now.duration_since(watch.seen);
            if wall < TICK / 2 {
                continue; // started since the last look: judge it next time
            }
            let cpu = watch.thread.cpu_time();
            if cpu.saturating_sub(watch.cpu).as_secs_f64() < STARVED * wall.as_secs_f64() {
                watch.raised = os::to_niceness(Some(&watch.thread), nice);
                tracing::debug!(raised = watch.raised, "an analysis starved at SCHED_IDLE");
            }
            (watch.seen, watch.cpu) = (now, cpu);
        }
    }
}

#[cfg(target_os = "linux")]
mod os {
    use super::Mode;
    use std::time::Duration;

    /// A thread of this process: its kernel id and its CPU-time clock.
    pub struct Thread {
        tid: libc::pid_t,
        clock: libc::clockid_t,
    }

    impl Thread {
        pub fn current() -> Self {
            let mut clock: libc::clockid_t = libc::CLOCK_THREAD_CPUTIME_ID;
            // SAFETY: `gettid` takes nothing; `pthread_getcpuclockid` writes one clockid_t into `clock`, which
            // outlives the call (on failure `clock` stays the calling thread's own clock, which is as good).
            let tid = unsafe {
                libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock);
                libc::gettid()
            };
            Self { tid, clock }
        }

        /// CPU time the thread has used (zero once it has ended).
        pub fn cpu_time(&self) -> Duration {
            let mut time = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            // SAFETY: writes one timespec into `time`, which outlives the call.
            if unsafe { libc::clock_gettime(self.clock, &mut time) } != 0 {
                return Duration::ZERO;
            }
            Duration::new(u64::try_from(time.tv_sec).unwrap_or(0), u32::try_from(time.tv_nsec).unwrap_or(0))
        }
    }

    /// Sets `thread` (`None`: the calling thread) to `policy` at niceness `nice`.
    fn set(thread: Option<&Thread>, policy: libc::c_int, nice: libc::c_int) -> bool {
        let attr = libc::sched_attr {
            size: std::mem::size_of::<libc::sched_attr>() as u32,
            sched_policy: policy as u32,
            sched_flags: 0,
            sched_nice: nice,
            sched_priority: 0,
            sched_runtime: 0,
            sched_deadline: 0,
            sched_period: 0,
        };
        let tid = thread.map_or(0, |thread| thread.tid);
        // SAFETY: `sched_setattr` reads `attr`, which says its own size and outlives the call.
        unsafe { libc::syscall(libc::SYS_sched_setattr, tid, &attr as *const libc::sched_attr, 0) == 0 }
    }

    /// The process's niceness plus `nice`, at most 19.
    fn lowered(nice: u8) -> libc::c_int {
        // SAFETY: reads the calling thread's niceness (errno cleared first: -1 is a valid niceness); threads start
        // at the niceness of the thread that started them, the process's for every thread of ours.
        let current = unsafe {
            *libc::__errno_location() = 0;
            libc::getpriority(libc::PRIO_PROCESS, 0)
        };
        (current + libc::c_int::from(nice)).min(19)
    }

    /// Moves the calling thread to `SCHED_IDLE` (keeping the niceness it will be raised to).
    pub fn to_idle() -> bool {
        set(None, libc::SCHED_IDLE, lowered(0))
    }

    /// Makes `thread` an ordinary thread `nice` below the process.
    pub fn to_niceness(thread: Option<&Thread>, nice: u8) -> bool {
        let done = set(thread, libc::SCHED_OTHER, lowered(nice));
        if !done {
            tracing::debug!(error = %std::io::Error::last_os_error(), "a background thread keeps its priority");
        }
        done
    }

    /// Whether a thread of this process may leave `SCHED_IDLE` for niceness `nice`: tried on a thread of its own.
    pub fn mode(nice: u8) -> Mode {
        let target = lowered(nice);
        let tried = std::thread::Builder::new()
            .name("stakegraph-probe".into())
            .spawn(move || set(None, libc::SCHED_IDLE, target) && set(None, libc::SCHED_OTHER, target))
            .map(|probe| probe.join().unwrap_or(false));
        if tried.unwrap_or(false) {
            Mode::Idle
        } else {
            Mode::Nice
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod os {
    use super::Mode;
    use std::time::Duration;

    pub struct Thread;

    impl Thread {
        pub fn current() -> Self {
            Self
        }

        pub fn cpu_time(&self) -> Duration {
            Duration::ZERO
        }
    }

    pub fn to_idle() -> bool {
        false
    }

    pub fn to_niceness(_thread: Option<&Thread>, _nice: u8) -> bool {
        false
    }

    pub fn mode(_nice: u8) -> Mode {
        Mode::Normal
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;

    /// The calling thread's scheduling policy and niceness.
    fn policy_and_niceness() -> (libc::c_int, libc::c_int) {
        // SAFETY: both read the calling thread's scheduling (errno cleared first: -1 is a valid niceness).
        unsafe {
            *libc::__errno_location() = 0;
            (libc::sched_getscheduler(0), libc::getpriority(libc::PRIO_PROCESS, 0))
        }
    }

    fn run<T: Send + 'static>(background: &Background, work: impl FnOnce() -> T + Send + 'static) -> T {
        let (done, result) = mpsc::channel();
        background.spawn(move || _ = done.send(work())).unwrap();
        result.recv().unwrap()
    }

    #[test]
    fn background_threads_start_below_the_requests_and_the_caller_keeps_its_priority() {
        let before = policy_and_niceness();
        let background = Background::new(12);
        let inside = run(&background, policy_and_niceness);
        match background.mode() {
            Mode::Idle => assert_eq!(inside.0, libc::SCHED_IDLE),
            Mode::Nice => assert_eq!(inside, (libc::SCHED_OTHER, (before.1 + 12).min(19))),
            Mode::Normal => unreachable!("Linux with a niceness of 12"),
        }
        assert_eq!(policy_and_niceness(), before, "the caller's thread keeps its priority");
        let normal = Background::new(0);
        assert_eq!(normal.mode(), Mode::Normal);
        assert_eq!(run(&normal, policy_and_niceness), before);
    }

    #[test]
    fn a_background_thread_starved_by_a_busy_core_is_raised_to_its_niceness() {
        let background = Background::new(10);
        if background.mode() != Mode::Idle {
            return; // this process may not leave SCHED_IDLE: background threads never start there
        }
        // Everything this test starts shares one core with a thread that keeps it busy.
        // SAFETY: `set` is a plain bit set; `sched_setaffinity` reads it and changes only the calling thread.
        unsafe {
            let mut one: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(0, &mut one);
            assert_eq!(libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &one), 0);
        }
        let busy = Arc::new(AtomicBool::new(true));
        let hog = {
            let busy = busy.clone();
            std::thread::spawn(move || {
                while busy.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        };
        let started = Instant::now();
        let raised = run(&background, move || loop {
            let (policy, niceness) = policy_and_niceness();
            if policy == libc::SCHED_OTHER || started.elapsed() > Duration::from_secs(60) {
                return (policy, niceness);
            }
        });
        busy.store(false, Ordering::Relaxed);
        hog.join().unwrap();
        let (_, process) = policy_and_niceness();
        assert_eq!(raised, (libc::SCHED_OTHER, (process + 10).min(19)), "raised from SCHED_IDLE by the watchdog");
    }
}
