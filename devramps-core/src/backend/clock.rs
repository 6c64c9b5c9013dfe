//! Time, as the engine sees it: the core reads no clock of its own.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;

/// A clock.
///
/// # Contract
///
/// `now` never goes backwards; `sleep_until(t)` completes at or after `t` (at once when `t` is
/// past). A manual clock completes sleepers only when advanced.
#[async_trait]
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
    /// Waits until `deadline`.
    async fn sleep_until(&self, deadline: Timestamp);
}

/// A shared [`Clock`].
pub type DynClock = Arc<dyn Clock>;

/// Forwards every method, so `Arc<C>` and `Box<C>` (including `Arc<dyn Clock>`) are clocks
/// too.
macro_rules! forward_clock {
    ($($pointer:ident),*) => {$(
        #[async_trait]
        impl<T: Clock + ?Sized> Clock for $pointer<T> {
            fn now(&self) -> Timestamp {
                (**self).now()
            }

            async fn sleep_until(&self, deadline: Timestamp) {
                (**self).sleep_until(deadline).await
            }
        }
    )*};
}

forward_clock!(Arc, Box);
