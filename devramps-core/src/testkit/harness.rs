//! [`Harness`]: how the kit sets up, runs and cleans up one case of a backend.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::FutureExt;
use futures::future::LocalBoxFuture;

/// How a backend crate runs the kit's cases: one fresh, isolated backend per case.
///
/// ```
/// use devramps_core::backend::DynEventStore;
/// use devramps_core::testkit::{Capabilities, Harness, Runtime};
///
/// /// A store that cannot fence, set up and torn down per case.
/// struct MyStoreHarness;
///
/// impl Harness for MyStoreHarness {
///     type Backend = DynEventStore;
///     fn capabilities(&self) -> Capabilities {
///         Capabilities::all().with_fencing(false)
///     }
///     fn runtime(&self) -> Runtime {
///         Runtime::Futures // `Runtime::Tokio` (feature `tokio`) for a tokio-based client
///     }
///     async fn setup(&self) -> DynEventStore {
///         // Create a bucket, a table or a prefix of its own here.
/// #       unimplemented!()
///     }
///     async fn cleanup(&self, store: DynEventStore) {
///         // Delete what setup created.
/// #       drop(store)
///     }
/// }
/// ```
pub trait Harness {
    /// What setup makes: the backend under test, or the fixture around it that the cases of
    /// its family take ([`SourceFixture`](super::SourceFixture), ...).
    type Backend;

    /// The runtime the cases (and setup and cleanup) run on; `futures::executor` by default.
    fn runtime(&self) -> Runtime {
        Runtime::Futures
    }

    /// What the backend can do; everything by default.
    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
    }

    /// Makes a fresh backend that no other case sees.
    fn setup(&self) -> impl Future<Output = Self::Backend>;

    /// Removes what setup made; called after every case, also when the case failed. Does
    /// nothing by default.
    fn cleanup(&self, backend: Self::Backend) -> impl Future<Output = ()> {
        drop(backend);
        async {}
    }
}

/// The [`Harness`] of a backend made by a function: no cleanup, every capability,
/// `futures::executor`. The macros use it when given an expression instead of a harness.
#[derive(Clone, Copy, Debug)]
pub struct Fresh<F>(pub F);

impl<B, F: Fn() -> B> Harness for Fresh<F> {
    type Backend = B;

    async fn setup(&self) -> B {
        (self.0)()
    }
}

/// What a backend can do. A case about a capability the backend lacks checks instead that
/// the backend refuses it loudly, with [`Error::NotSupported`](crate::Error::NotSupported).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// The event store enforces fencing tokens ([`AppendOptions::fencing_token`]).
    ///
    /// [`AppendOptions::fencing_token`]: crate::backend::AppendOptions::fencing_token
    pub fencing: bool,
    /// The event store lists its streams ([`EventStore::streams`]).
    ///
    /// [`EventStore::streams`]: crate::backend::EventStore::streams
    pub list_streams: bool,
}

impl Capabilities {
    /// Every capability.
    pub fn all() -> Self {
        Capabilities {
            fencing: true,
            list_streams: true,
        }
    }

    /// Sets [`fencing`](Capabilities::fencing).
    pub fn with_fencing(mut self, fencing: bool) -> Self {
        self.fencing = fencing;
        self
    }

    /// Sets [`list_streams`](Capabilities::list_streams).
    pub fn with_list_streams(mut self, list_streams: bool) -> Self {
        self.list_streams = list_streams;
        self
    }
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities::all()
    }
}

/// The runtime a harness's futures need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Runtime {
    /// `futures::executor::block_on`: enough for backends that need no runtime.
    Futures,
    /// A current-thread tokio runtime with I/O and time enabled (feature `tokio`), for
    /// backends built on tokio (an S3 client, a database driver).
    #[cfg(feature = "tokio")]
    Tokio,
}

impl Runtime {
    /// Runs `future` to completion on this runtime.
    pub fn block_on<F: Future>(self, future: F) -> F::Output {
        match self {
            Runtime::Futures => futures::executor::block_on(future),
            #[cfg(feature = "tokio")]
            Runtime::Tokio => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match runtime {
                    Ok(runtime) => runtime.block_on(future),
                    Err(e) => panic!("could not start a tokio runtime for the kit: {e}"),
                }
            }
        }
    }
}

/// How time passes for a backend whose executions take time (runners, the engine).
#[derive(Clone)]
pub enum Time {
    /// Real time: waits end by themselves.
    Real,
    /// A manual clock: whenever the case is blocked, the kit calls the function, which moves
    /// the clock to its next sleeper's deadline and returns whether there was one.
    Manual(Arc<dyn Fn() -> bool + Send + Sync>),
}

impl Time {
    /// A manual clock moved by `advance_to_next_deadline`.
    pub fn manual(advance_to_next_deadline: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        Time::Manual(Arc::new(advance_to_next_deadline))
    }
}

impl fmt::Debug for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Time::Real => "Time::Real",
            Time::Manual(_) => "Time::Manual",
        })
    }
}

/// Polls between two moves of a manual clock.
const YIELDS: usize = 32;
/// Moves of a manual clock that found no sleeper before a blocked case counts as stuck.
const STALLS: usize = 64;

/// Runs `future` to completion while time passes: with [`Time::Real`] it just awaits it; with
/// [`Time::Manual`] it lets everything else run, then moves the clock to the next deadline,
/// again and again, and panics naming `what` when nothing can progress any more (the future
/// is blocked and no sleeper is left).
pub async fn until<F: Future>(time: &Time, what: &str, future: F) -> F::Output {
    let advance = match time {
        Time::Real => return future.await,
        Time::Manual(advance) => advance.clone(),
    };
    let mut future = pin!(future);
    let mut stalls = 0;
    loop {
        for _ in 0..YIELDS {
            if let Poll::Ready(output) = futures::poll!(future.as_mut()) {
                return output;
            }
            YieldNow(false).await;
        }
        if advance() {
            stalls = 0;
        } else {
            stalls += 1;
            if stalls > STALLS {
                panic!("{what}: blocked, and no sleeper is left on the manual clock");
            }
        }
    }
}

/// Pending once (waking itself at once), so that the executor polls everything else.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// Sets up a backend with `harness`, runs `case` on it, and cleans it up even when the case
/// panicked (then panics again). The macros call this.
pub fn run<H: Harness>(
    harness: H,
    case: impl for<'a> FnOnce(&'a H::Backend, &'a Capabilities) -> LocalBoxFuture<'a, ()>,
) {
    let capabilities = harness.capabilities();
    harness.runtime().block_on(async {
        let backend = harness.setup().await;
        let outcome = AssertUnwindSafe(case(&backend, &capabilities))
            .catch_unwind()
            .await;
        harness.cleanup(backend).await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    });
}
