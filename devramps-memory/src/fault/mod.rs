//! Fault injection: [`FaultyStore`] and [`FaultyLock`] wrap a backend and make some of its
//! calls fail, on a deterministic schedule or a seeded pseudo-random one, so that tests can
//! check that the engine survives a backend that errs.
//!
//! Faults never half-apply: an injected [`Fault::Unavailable`] or [`Fault::Conflict`] happens
//! *instead of* the inner call, which is not made. The one exception is [`Fault::AckLost`],
//! which models a write that happened but whose answer was lost: the inner call is made and
//! succeeds, and the caller still gets an error, so it must re-read to find out what happened.

mod lock;
mod store;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;

use devramps_core::Error;

pub use lock::FaultyLock;
pub use store::FaultyStore;

/// A fault to inject into one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// The call fails with [`Error::Unavailable`] without reaching the inner backend.
    Unavailable,
    /// A lost race, without reaching the inner backend: store appends and lock renewals fail
    /// with [`Error::Conflict`], lock acquisitions return `Ok(None)` (as if someone else held
    /// the key); on other calls it acts as [`Fault::Unavailable`].
    Conflict,
    /// On writes (append, save_snapshot, acquire, renew, release) the inner call is made, and
    /// when it succeeds the caller gets [`Error::Unavailable`] anyway: the write happened but its
    /// acknowledgement was lost. On reads it acts as [`Fault::Unavailable`].
    AckLost,
}

/// When faults are injected. Calls are counted from 1 across every method of the decorator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum FaultSchedule {
    /// Never: the decorator is transparent.
    #[default]
    Never,
    /// At exactly these call numbers.
    AtCalls(BTreeMap<u64, Fault>),
    /// Each call fails with probability `1 / one_in`, with a fault drawn uniformly from
    /// `faults`, from a xorshift generator seeded with `seed` (the same seed and calls give
    /// the same faults). `one_in: 0` or empty `faults` injects nothing.
    Random {
        /// The generator's seed.
        seed: u64,
        /// One call in how many fails, on average.
        one_in: u32,
        /// The faults to choose from.
        faults: Vec<Fault>,
    },
    /// As [`FaultSchedule::Random`], but only writes can fail (store appends and snapshot
    /// saves, lease acquisitions, renewals and releases); reads always pass and draw nothing
    /// from the generator. For example random compare-and-swap conflicts on appends while
    /// several engines read the store freely.
    RandomWrites {
        /// The generator's seed.
        seed: u64,
        /// One write in how many fails, on average.
        one_in: u32,
        /// The faults to choose from.
        faults: Vec<Fault>,
    },
}

impl FaultSchedule {
    /// A schedule failing the given calls.
    pub fn at_calls(calls: impl IntoIterator<Item = (u64, Fault)>) -> Self {
        FaultSchedule::AtCalls(calls.into_iter().collect())
    }
}

/// A class of calls that [`FaultyStore::fail_next`] fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CallKind {
    /// Appends to a stream.
    Append,
    /// Every read: events, the last sequence number, streams, snapshots.
    Read,
}

/// Options of a fault-injecting decorator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultOptions {
    /// When to fail.
    pub schedule: FaultSchedule,
    /// Times every call yields to the executor before it runs (simulated latency that lets
    /// concurrent callers interleave; it takes no clock time).
    pub latency_yields: u32,
}

/// One injected fault, as recorded by a decorator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InjectedFault {
    /// The call number, from 1.
    pub call: u64,
    /// The call, for example ``append to `api` ``.
    pub operation: String,
    /// The fault.
    pub fault: Fault,
}

/// A xorshift64* generator: tiny, deterministic, good enough to pick faults.
#[derive(Clone, Debug)]
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        XorShift(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[derive(Debug)]
struct Injector {
    options: FaultOptions,
    rng: XorShift,
    calls: u64,
    injected: Vec<InjectedFault>,
    /// Calls of each kind still to fail with [`Fault::Unavailable`], before the schedule.
    queued: BTreeMap<CallKind, u32>,
}

/// The fault state shared by the clones of a decorator.
#[derive(Clone, Debug)]
pub(crate) struct Faults {
    name: &'static str,
    state: Arc<Mutex<Injector>>,
}

impl Faults {
    pub(crate) fn new(name: &'static str, options: FaultOptions) -> Self {
        let seed = match &options.schedule {
            FaultSchedule::Random { seed, .. } | FaultSchedule::RandomWrites { seed, .. } => *seed,
            _ => 0,
        };
        Faults {
            name,
            state: Arc::new(Mutex::new(Injector {
                options,
                rng: XorShift::new(seed),
                calls: 0,
                injected: Vec::new(),
                queued: BTreeMap::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Injector> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a call (a write when `write`), waits out the latency, and decides its fault.
    pub(crate) async fn before(&self, operation: String, write: bool) -> Option<(u64, Fault)> {
        self.before_kind(operation, write, None).await
    }

    /// Makes the next `times` calls of `kind` fail with [`Fault::Unavailable`] (added to any
    /// still queued).
    pub(crate) fn fail_next(&self, kind: CallKind, times: u32) {
        let mut injector = self.lock();
        let queued = injector.queued.entry(kind).or_default();
        *queued = queued.saturating_add(times);
    }

    /// As [`Faults::before`], for a call of `kind`: a queued failure of that kind comes first.
    pub(crate) async fn before_kind(
        &self,
        operation: String,
        write: bool,
        kind: Option<CallKind>,
    ) -> Option<(u64, Fault)> {
        let (decision, yields) = {
            let mut injector = self.lock();
            injector.calls += 1;
            let call = injector.calls;
            let queued = kind
                .and_then(|kind| injector.queued.get_mut(&kind))
                .filter(|n| **n > 0);
            let queued = match queued {
                Some(n) => {
                    *n -= 1;
                    Some(Fault::Unavailable)
                }
                None => None,
            };
            let fault = queued.or_else(|| match &injector.options.schedule {
                FaultSchedule::Never => None,
                FaultSchedule::AtCalls(calls) => calls.get(&call).copied(),
                FaultSchedule::RandomWrites { .. } if !write => None,
                FaultSchedule::Random { one_in, faults, .. }
                | FaultSchedule::RandomWrites { one_in, faults, .. } => {
                    let (one_in, count) = (u64::from(*one_in), faults.len() as u64);
                    let faults = faults.clone();
                    let roll = injector.rng.next();
                    let pick = injector.rng.next();
                    (one_in > 0 && count > 0 && roll.is_multiple_of(one_in))
                        .then(|| faults[(pick % count) as usize])
                }
            });
            if let Some(fault) = fault {
                let record = InjectedFault {
                    call,
                    operation,
                    fault,
                };
                injector.injected.push(record);
            }
            (fault.map(|f| (call, f)), injector.options.latency_yields)
        };
        for _ in 0..yields {
            yield_now().await;
        }
        decision
    }

    pub(crate) fn error(&self, operation: &str, call: u64, fault: Fault) -> Error {
        let message = match fault {
            Fault::AckLost => format!(
                "injected fault at call {call}: the write was applied but its acknowledgement \
                 was lost; re-read to find out what happened"
            ),
            _ => format!("injected fault at call {call} ({fault:?}); nothing was done, retry"),
        };
        Error::unavailable(self.name, operation, message)
    }

    pub(crate) fn set_options(&self, options: FaultOptions) {
        let mut injector = self.lock();
        if let FaultSchedule::Random { seed, .. } | FaultSchedule::RandomWrites { seed, .. } =
            &options.schedule
        {
            injector.rng = XorShift::new(*seed);
        }
        injector.options = options;
    }

    pub(crate) fn injected(&self) -> Vec<InjectedFault> {
        self.lock().injected.clone()
    }

    pub(crate) fn calls(&self) -> u64 {
        self.lock().calls
    }
}

/// Yields to the executor once (wakes itself, then is pending once).
pub(crate) async fn yield_now() {
    let mut yielded = false;
    futures::future::poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_schedule_is_deterministic_per_seed() {
        let options = |seed| FaultOptions {
            schedule: FaultSchedule::Random {
                seed,
                one_in: 3,
                faults: vec![Fault::Unavailable, Fault::Conflict],
            },
            latency_yields: 0,
        };
        let run = |seed| {
            let faults = Faults::new("test", options(seed));
            futures::executor::block_on(async {
                for i in 0..200 {
                    faults.before(format!("call {i}"), true).await;
                }
            });
            faults.injected()
        };
        let (a, b, c) = (run(7), run(7), run(8));
        assert_eq!(a, b, "same seed, same faults");
        assert_ne!(a, c, "another seed, other faults");
        assert!(
            (30..=110).contains(&a.len()),
            "about one call in 3: {}",
            a.len()
        );
        assert!(a.iter().any(|f| f.fault == Fault::Conflict));
        assert!(a.iter().any(|f| f.fault == Fault::Unavailable));
    }

    #[test]
    fn random_writes_spare_reads() {
        let options = FaultOptions {
            schedule: FaultSchedule::RandomWrites {
                seed: 3,
                one_in: 2,
                faults: vec![Fault::Conflict],
            },
            latency_yields: 0,
        };
        let faults = Faults::new("test", options);
        futures::executor::block_on(async {
            for i in 0..100 {
                let write = i % 2 == 0;
                let fault = faults.before(format!("call {i}"), write).await;
                assert!(write || fault.is_none(), "read {i} failed");
            }
        });
        let injected = faults.injected();
        assert!((10..=45).contains(&injected.len()), "{}", injected.len());
        assert!(injected.iter().all(|f| f.call % 2 == 1), "only writes fail");
    }

    #[test]
    fn never_and_zero_probability_inject_nothing() {
        for schedule in [
            FaultSchedule::Never,
            FaultSchedule::Random {
                seed: 1,
                one_in: 0,
                faults: vec![Fault::Unavailable],
            },
            FaultSchedule::Random {
                seed: 1,
                one_in: 1,
                faults: vec![],
            },
        ] {
            let options = FaultOptions {
                schedule,
                latency_yields: 2,
            };
            let faults = Faults::new("test", options);
            futures::executor::block_on(async {
                for _ in 0..50 {
                    assert_eq!(faults.before(String::new(), true).await, None);
                }
            });
            assert_eq!(faults.calls(), 50);
        }
    }

    #[test]
    fn queued_failures_hit_only_their_kind_and_come_first() {
        let faults = Faults::new("test", FaultOptions::default());
        faults.fail_next(CallKind::Append, 2);
        futures::executor::block_on(async {
            let read = faults.before_kind("read".into(), false, Some(CallKind::Read));
            assert_eq!(read.await, None);
            for call in [2, 3] {
                let append = faults.before_kind("append".into(), true, Some(CallKind::Append));
                assert_eq!(append.await, Some((call, Fault::Unavailable)));
            }
            let append = faults.before_kind("append".into(), true, Some(CallKind::Append));
            assert_eq!(append.await, None);
        });
        assert_eq!(faults.injected().len(), 2);
    }
}
