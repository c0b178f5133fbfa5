//! A software device for the CUDA backend's tests: the kernels of src/kernels/cuda/kernels.cu
//! compiled for the host by g++ with emu.h (threads as fibers, barriers and shuffles emulated),
//! loaded with dlopen, behind `bitnet::kernels::cuda::Device`. Device memory is host memory;
//! a captured graph is the recorded list of launches, replayed in order.

#![allow(dead_code)]

use std::ffi::{c_char, c_void, CString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use bitnet::kernels::cuda::{Arg, DevBuf, Device, Graph};
use bitnet::{Error, Result};

type LaunchFn =
    unsafe extern "C" fn(*const c_char, u32, u32, u32, u32, u32, u32, *mut *mut c_void) -> i32;

extern "C" {
    fn dlopen(filename: *const c_char, flag: i32) -> *mut c_void;
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    fn dlerror() -> *const c_char;
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Builds the emulation library once per test process (about 2 s with g++ -O2).
fn library() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cuda_emu");
        std::fs::create_dir_all(&dir).unwrap();
        let lib = dir.join(format!("libkernels_emu_{}.so", std::process::id()));
        let out = Command::new("g++")
            .args([
                "-std=c++17",
                "-O2",
                "-g",
                "-fPIC",
                "-shared",
                "-ffp-contract=off",
                "-Wall",
                "-Wno-unknown-pragmas",
                "-Werror",
            ])
            .arg(format!("-I{}", repo().join("src/kernels/cuda").display()))
            .arg("-o")
            .arg(&lib)
            .arg(repo().join("tests/cuda_emu/emu.cpp"))
            .output()
            .expect("cannot run g++");
        assert!(
            out.status.success(),
            "g++ failed on tests/cuda_emu/emu.cpp:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        lib
    })
}

fn launcher() -> LaunchFn {
    static F: OnceLock<usize> = OnceLock::new();
    let addr = *F.get_or_init(|| {
        let path = CString::new(library().to_str().unwrap()).unwrap();
        const RTLD_NOW: i32 = 2;
        // SAFETY: a NUL-terminated path to the library built above; dlopen/dlsym/dlerror have
        // no other preconditions, and the handle stays open for the process.
        unsafe {
            let h = dlopen(path.as_ptr(), RTLD_NOW);
            assert!(
                !h.is_null(),
                "dlopen: {}",
                std::ffi::CStr::from_ptr(dlerror()).to_string_lossy()
            );
            let f = dlsym(h, c"emu_launch".as_ptr());
            assert!(!f.is_null(), "no emu_launch in the emulation library");
            f as usize
        }
    });
    // SAFETY: the symbol is emu.cpp's `extern "C" int emu_launch(...)` with exactly this
    // signature.
    unsafe { std::mem::transmute::<usize, LaunchFn>(addr) }
}

/// Host memory standing in for device memory (256-byte aligned, zeroed).
struct HostMem {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}
// SAFETY: the memory is only reached through the addresses handed to kernels and copies,
// serialized by the callers as on a real device.
unsafe impl Send for HostMem {}
// SAFETY: as above.
unsafe impl Sync for HostMem {}
impl Drop for HostMem {
    fn drop(&mut self) {
        // SAFETY: allocated in `alloc` with this layout, freed once.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) }
    }
}

struct Launch {
    kernel: &'static str,
    grid: [u32; 3],
    block: [u32; 3],
    args: Vec<Arg>,
}

fn run(l: &Launch) -> Result<()> {
    let name = CString::new(l.kernel).unwrap();
    let mut params: Vec<*mut c_void> = l.args.iter().map(Arg::value_ptr).collect();
    // SAFETY: the argument list matches the kernel's C signature (built by bitnet's ops.rs),
    // every address points into live HostMem allocations, and the call is synchronous.
    let rc = unsafe {
        launcher()(
            name.as_ptr(),
            l.grid[0],
            l.grid[1],
            l.grid[2],
            l.block[0],
            l.block[1],
            l.block[2],
            params.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(Error::unsupported(format!(
            "emu: launch of {} failed ({rc})",
            l.kernel
        )));
    }
    Ok(())
}

/// The emulated device. Launches run synchronously; one at a time (a global lock, since the
/// emulation keeps its block state in globals).
#[derive(Default)]
pub struct EmuDevice {
    capturing: Mutex<Option<Vec<Launch>>>,
    pub launches: Mutex<u64>,
}

static RUN: Mutex<()> = Mutex::new(());

struct EmuGraph(Vec<Launch>);

impl Graph for EmuGraph {
    fn launch(&self) -> Result<()> {
        let _g = RUN.lock().unwrap_or_else(|e| e.into_inner());
        self.0.iter().try_for_each(run)
    }
}

impl EmuDevice {
    pub fn new() -> Arc<EmuDevice> {
        Arc::new(EmuDevice::default())
    }
}

impl Device for EmuDevice {
    fn describe(&self) -> String {
        "host emulation of the CUDA kernels".into()
    }

    fn mem_info(&self) -> (usize, usize) {
        (1 << 34, 1 << 34)
    }

    fn alloc(&self, bytes: usize) -> Result<DevBuf> {
        let layout = std::alloc::Layout::from_size_align(bytes.max(1), 256).unwrap();
        // SAFETY: a non-zero size and a valid alignment.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "out of host memory");
        Ok(DevBuf::new(
            ptr as u64,
            bytes,
            Box::new(HostMem { ptr, layout }),
        ))
    }

    fn upload(&self, dst: u64, src: &[u8]) -> Result<()> {
        // SAFETY: `dst` addresses an allocation of this device with room for `src`.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst as *mut u8, src.len()) };
        Ok(())
    }

    fn download(&self, src: u64, dst: &mut [u8]) -> Result<()> {
        // SAFETY: `src` addresses an allocation of this device with `dst.len()` bytes.
        unsafe { std::ptr::copy_nonoverlapping(src as *const u8, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    fn launch(
        &self,
        kernel: &'static str,
        grid: [u32; 3],
        block: [u32; 3],
        args: &[Arg],
    ) -> Result<()> {
        let l = Launch {
            kernel,
            grid,
            block,
            args: args.to_vec(),
        };
        if let Some(list) = self.capturing.lock().unwrap().as_mut() {
            list.push(l);
            return Ok(());
        }
        *self.launches.lock().unwrap() += 1;
        let _g = RUN.lock().unwrap_or_else(|e| e.into_inner());
        run(&l)
    }

    fn sync(&self) -> Result<()> {
        Ok(())
    }

    fn capture(&self, f: &mut dyn FnMut() -> Result<()>) -> Result<Box<dyn Graph>> {
        *self.capturing.lock().unwrap() = Some(Vec::new());
        let r = f();
        let list = self.capturing.lock().unwrap().take().unwrap_or_default();
        r?;
        Ok(Box::new(EmuGraph(list)))
    }
}
