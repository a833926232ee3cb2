//! Run-to-completion workers on EAL lcores, launched in a scope that joins them before it ends,
//! so workers may borrow ports and pools (the same contract as `std::thread::scope`).

use std::cell::RefCell;
use std::ffi::{c_int, c_void};
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::eal::Eal;
use crate::error::{Error, Result, RteErrno};
use crate::ffi;

/// Return code of a worker whose closure panicked.
const PANICKED: c_int = -1_000_001;

type Work<'scope> = Box<dyn FnOnce() -> i32 + Send + 'scope>;

/// Launches workers that may borrow anything living longer than the scope.
pub struct Scope<'scope, 'env: 'scope> {
    launched: RefCell<Vec<u32>>,
    _scope: PhantomData<&'scope mut &'scope ()>,
    _env: PhantomData<&'env mut &'env ()>,
}

impl<'scope> Scope<'scope, '_> {
    /// Starts `work` on `lcore`. The lcore must be one of EAL's workers (else `Error::Launch` with
    /// EINVAL) and idle (else EBUSY).
    pub fn launch<F>(&'scope self, lcore: u32, work: F) -> Result<()>
    where
        F: FnOnce() -> i32 + Send + 'scope,
    {
        // rte_eal_remote_launch neither bounds-checks `lcore` (it indexes lcore_config[lcore]) nor
        // checks that a thread serves it (it writes to the lcore's pipes, fd 0 for lcores without
        // one): only EAL's worker lcores may be named.
        // SAFETY: both read EAL's lcore table; rte_lcore_is_enabled checks the bound itself.
        let worker = unsafe { ffi::rte_lcore_is_enabled(lcore) != 0 && lcore != ffi::rte_get_main_lcore() };
        if !worker {
            return Err(Error::Launch { lcore, errno: RteErrno(libc::EINVAL) });
        }
        let boxed: Box<Work<'scope>> = Box::new(Box::new(work));
        // SAFETY: the closure may borrow data that lives for 'scope only. We erase that
        // lifetime to pass it through C; `Eal::scope` waits for every launched lcore before
        // 'scope ends (also when unwinding), so the closure never outlives its borrows.
        let boxed: Box<Work<'static>> = unsafe { std::mem::transmute::<Box<Work<'scope>>, Box<Work<'static>>>(boxed) };
        let arg = Box::into_raw(boxed) as *mut c_void;
        // SAFETY: `trampoline` matches lcore_function_t and takes ownership of `arg`.
        let rc = unsafe { ffi::rte_eal_remote_launch(Some(trampoline), arg, lcore) };
        if rc != 0 {
            // SAFETY: the launch failed, so the lcore never took `arg`: reclaim and drop it.
            drop(unsafe { Box::from_raw(arg as *mut Work<'static>) });
            return Err(Error::Launch { lcore, errno: RteErrno(-rc) });
        }
        self.launched.borrow_mut().push(lcore);
        Ok(())
    }

    /// A launched worker that has already returned (its lcore waits for work again), if any: a
    /// worker runs until told to stop, so one that ends on its own (it panicked, or gave up) has
    /// left its queues unserved, and the caller should stop the rest rather than run on without it.
    pub fn finished_worker(&self) -> Option<u32> {
        // SAFETY: reads the state of lcores this scope launched (valid worker lcores).
        self.launched
            .borrow()
            .iter()
            .copied()
            .find(|&lcore| unsafe { ffi::rte_eal_get_lcore_state(lcore) } == ffi::WAIT)
    }

    fn join_all(&self) -> Vec<(u32, i32)> {
        self.launched
            .borrow_mut()
            .drain(..)
            // SAFETY: waits for a worker we launched; safe to call from the main lcore.
            .map(|lcore| (lcore, unsafe { ffi::rte_eal_wait_lcore(lcore) }))
            .collect()
    }
}

extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Box leaked by `Scope::launch`, handed to exactly this call.
    let work = unsafe { Box::from_raw(arg as *mut Work<'static>) };
    // A panic must not unwind into C: report it as a return code instead.
    catch_unwind(AssertUnwindSafe(work)).unwrap_or(PANICKED)
}

struct JoinGuard<'a, 'scope, 'env>(&'a Scope<'scope, 'env>);

impl Drop for JoinGuard<'_, '_, '_> {
    fn drop(&mut self) {
        self.0.join_all();
    }
}

impl Eal {
    /// Runs `main` on the calling (main) lcore while the workers it launches run on theirs;
    /// returns once every worker has returned. A worker that panicked or returned non-zero is
    /// reported as an error after all have been joined.
    pub fn scope<'env, F, T>(&'env self, main: F) -> Result<T>
    where
        F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
    {
        let scope = Scope { launched: RefCell::new(Vec::new()), _scope: PhantomData, _env: PhantomData };
        let guard = JoinGuard(&scope);
        let value = main(&scope);
        let exits = guard.0.join_all();
        drop(guard);
        if let Some((lcore, code)) = exits.into_iter().find(|(_, code)| *code != 0) {
            let how = if code == PANICKED { "panicked".to_string() } else { format!("returned {code}") };
            return Err(Error::WorkerFailed { lcore, how });
        }
        Ok(value)
    }
}
