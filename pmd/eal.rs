//! The Environment Abstraction Layer: brought up once per process, torn down on drop.

use std::ffi::{c_char, CString};
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::error::{Error, Result, RteErrno};
use crate::ffi;

/// What EAL is started with. midogw builds the lcore list, file prefix and device allow-list
/// itself from the config; `extra_args` carries whatever else the operator wants (`--no-huge`,
/// `-m 512`, `--log-level`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EalConfig {
    /// Lcore of the main (control) thread.
    pub main_core: u32,
    /// Lcores of the run-to-completion workers.
    pub worker_cores: Vec<u32>,
    /// EAL `--file-prefix`: separates the runtime files of processes running side by side.
    pub file_prefix: String,
    /// PCI addresses to probe; when empty, PCI scanning is switched off (`--no-pci`).
    pub pci_allow: Vec<String>,
    /// Further EAL arguments, passed through unchanged.
    pub extra_args: Vec<String>,
}

impl EalConfig {
    /// The argument vector handed to `rte_eal_init`, program name first.
    pub fn argv(&self) -> Vec<String> {
        let mut cores = vec![self.main_core];
        cores.extend(self.worker_cores.iter().copied().filter(|c| *c != self.main_core));
        let core_list = cores.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        let mut argv = vec![
            "midogw".to_string(),
            "-l".to_string(),
            core_list,
            "--main-lcore".to_string(),
            self.main_core.to_string(),
            "--file-prefix".to_string(),
            self.file_prefix.clone(),
        ];
        if self.pci_allow.is_empty() {
            argv.push("--no-pci".to_string());
        }
        for address in &self.pci_allow {
            argv.push("-a".to_string());
            argv.push(address.clone());
        }
        argv.extend(self.extra_args.iter().cloned());
        argv
    }
}

const UNINITIALISED: u8 = 0;
const RUNNING: u8 = 1;
const FINISHED: u8 = 2;
static EAL_STATE: AtomicU8 = AtomicU8::new(UNINITIALISED);

/// A running EAL. Everything else in this crate borrows it, so it is torn down last.
///
/// Neither `Send` nor `Sync`: launching workers and `rte_eal_cleanup` belong to the main lcore, so
/// the handle stays on the thread that initialised EAL.
#[derive(Debug)]
pub struct Eal {
    main_core: u32,
    worker_cores: Vec<u32>,
    /// EAL's runtime directory (`/var/run/dpdk/<file-prefix>`), removed at teardown.
    runtime_dir: Option<PathBuf>,
    _main_lcore_only: PhantomData<*const ()>,
}

impl Eal {
    /// Initialises EAL. Fails with a hint when hugepages or memory are missing.
    pub fn init(config: &EalConfig) -> Result<Eal> {
        let argv = config.argv();
        let mut owned = Vec::with_capacity(argv.len());
        for arg in &argv {
            owned.push(CString::new(arg.as_str()).map_err(|_| Error::InvalidName {
                what: "EAL argument",
                value: arg.clone(),
                why: "contains a NUL byte",
            })?);
        }
        // Only once the arguments are known to be good: a refused argument leaves EAL startable.
        if EAL_STATE.compare_exchange(UNINITIALISED, RUNNING, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return Err(Error::EalAlreadyInitialised);
        }
        tracing::info!(args = ?argv, "starting DPDK EAL");
        // EAL may keep pointers into argv for the life of the process (it reorders and keeps
        // option strings), so the strings are leaked on purpose: once per process.
        let owned: &'static mut [CString] = Vec::leak(owned);
        let mut ptrs: Vec<*mut c_char> = owned.iter_mut().map(|s| s.as_ptr() as *mut c_char).collect();
        let ptrs: &'static mut [*mut c_char] = Vec::leak(std::mem::take(&mut ptrs));
        // SAFETY: argc matches the array; every pointer is a valid NUL-terminated string that
        // lives for the rest of the process (leaked above). EAL_STATE guarantees one call.
        let rc = unsafe { ffi::rte_eal_init(ptrs.len() as i32, ptrs.as_mut_ptr()) };
        if rc < 0 {
            // EAL cannot be retried in the same process after a failed init.
            EAL_STATE.store(FINISHED, Ordering::Release);
            let errno = RteErrno(ffi::errno());
            // Remove the runtime directory EAL made before failing, but only when empty: a
            // non-empty one may belong to another process running with the same file prefix.
            if let Some(dir) = runtime_dir() {
                let _ = std::fs::remove_dir(dir);
            }
            return Err(Error::EalInit { errno, hint: init_failure_hint(config) });
        }
        Ok(Eal {
            main_core: config.main_core,
            worker_cores: config.worker_cores.clone(),
            runtime_dir: runtime_dir(),
            _main_lcore_only: PhantomData,
        })
    }

    /// The lcore of the thread that called `init`.
    pub fn main_core(&self) -> u32 {
        self.main_core
    }

    /// The worker lcores EAL was started with.
    pub fn worker_cores(&self) -> &[u32] {
        &self.worker_cores
    }

    /// NUMA socket of the calling lcore.
    pub fn socket_id(&self) -> i32 {
        // SAFETY: reads per-lcore state; EAL is running (we hold `self`).
        unsafe { ffi::rte_socket_id() as i32 }
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: every pool, ring and port borrows `self`, so all are gone; workers were joined
        // by `Eal::scope` before it returned.
        let rc = unsafe { ffi::rte_eal_cleanup() };
        if rc < 0 {
            tracing::warn!(errno = %RteErrno(-rc), "rte_eal_cleanup failed");
        }
        // EAL leaves its runtime directory (config, memseg lists, the multi-process socket) behind.
        // We were the primary process of this file prefix and we are done: remove it, so stopped
        // appliances and tests leave nothing in /var/run/dpdk.
        if let Some(dir) = self.runtime_dir.take() {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot remove EAL runtime directory");
                }
            }
        }
        EAL_STATE.store(FINISHED, Ordering::Release);
    }
}

/// EAL's runtime directory, once `rte_eal_init` has chosen it.
fn runtime_dir() -> Option<PathBuf> {
    // SAFETY: returns a pointer to a static buffer (empty until EAL has chosen the directory).
    let dir = unsafe { std::ffi::CStr::from_ptr(ffi::rte_eal_get_runtime_dir()) };
    let dir = dir.to_string_lossy();
    (!dir.is_empty()).then(|| PathBuf::from(dir.as_ref()))
}

/// What an operator can do after EAL refused to start.
fn init_failure_hint(config: &EalConfig) -> String {
    let no_huge = config.extra_args.iter().any(|a| a == "--no-huge");
    if !no_huge {
        let free = hugepages_free().unwrap_or(0);
        if free == 0 {
            return "; no free hugepages: reserve some (echo 512 > /proc/sys/vm/nr_hugepages and mount hugetlbfs) or add \"--no-huge\", \"-m\", \"512\" to [eal] args".to_string();
        }
        return format!(
            "; {free} hugepages free: is hugetlbfs mounted, and is another DPDK process using file prefix {:?}?",
            config.file_prefix
        );
    }
    format!("; check [eal] args and that no other DPDK process uses file prefix {:?}", config.file_prefix)
}

fn hugepages_free() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    meminfo.lines().find_map(|l| l.strip_prefix("HugePages_Free:")).and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_puts_main_core_first_and_disables_pci_without_devices() {
        let config = EalConfig {
            main_core: 0,
            worker_cores: vec![1, 2],
            file_prefix: "t1".into(),
            pci_allow: vec![],
            extra_args: vec!["--no-huge".into()],
        };
        assert_eq!(
            config.argv(),
            ["midogw", "-l", "0,1,2", "--main-lcore", "0", "--file-prefix", "t1", "--no-pci", "--no-huge"]
        );
    }

    #[test]
    fn argv_allows_only_configured_pci_devices() {
        let config = EalConfig {
            main_core: 1,
            worker_cores: vec![0],
            file_prefix: "p".into(),
            pci_allow: vec!["0000:03:00.0".into(), "0000:03:00.1".into()],
            extra_args: vec![],
        };
        let argv = config.argv();
        assert_eq!(&argv[1..3], ["-l", "1,0"]);
        assert!(!argv.contains(&"--no-pci".to_string()));
        assert_eq!(&argv[7..], ["-a", "0000:03:00.0", "-a", "0000:03:00.1"]);
    }
}
