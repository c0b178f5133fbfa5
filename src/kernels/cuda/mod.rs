//! The CUDA backend (feature `cuda`): kernels in `kernels.cu`, compiled at run time with NVRTC for
//! the device found, launched through the CUDA driver API. Both libraries are loaded with dlopen
//! when first needed (cudarc's `dynamic-loading`), so a build needs no CUDA toolkit and a
//! machine without a GPU or driver gets an error value, never a crash.
//!
//! The forward pass (`model::gpu`) talks to a [`Device`]: device memory as plain addresses,
//! kernel launches by name with by-value arguments (as `cuLaunchKernel` takes them), and
//! capture of a sequence of launches as a replayable graph. [`CudaDevice`] is the real one;
//! the tests also run the same kernels and the same forward pass on a host emulation of the
//! device (tests/cuda_emu/).

pub mod ops;

use std::any::Any;
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Arc;

use cudarc::driver::sys::{CUresult, CUstreamCaptureMode};
use cudarc::driver::{
    result as drv, CudaContext, CudaFunction, CudaGraph, CudaStream, DriverError,
};
use cudarc::nvrtc::{compile_ptx_with_opts, CompileError, CompileOptions};

use crate::error::{Error, ErrorKind, Result};

pub use ops::{Seg, Segs};

/// The kernel source (CUDA C++, no includes).
pub const SOURCE: &str = include_str!("kernels.cu");

/// Every `extern "C" __global__` function of `SOURCE`.
pub const KERNELS: &[&str] = &[
    "embed_rows",
    "norm_act",
    "tern_gemv",
    "tern_gemm",
    "flt_gemv",
    "flt_i8_gemv",
    "rope_kv",
    "attention",
    "read_sum",
];

/// Oldest compute capability the kernels run on (dp4a).
pub const MIN_CC: (i32, i32) = (6, 1);

/// One kernel argument, passed by value (a device address is a `Ptr`).
#[derive(Clone, Copy, Debug)]
pub enum Arg {
    Ptr(u64),
    I32(i32),
    I64(i64),
    F32(f32),
    Segs(Segs),
}

impl Arg {
    /// The address of the value, as `cuLaunchKernel`'s parameter array wants it.
    pub fn value_ptr(&self) -> *mut c_void {
        match self {
            Arg::Ptr(v) => v as *const u64 as *mut c_void,
            Arg::I32(v) => v as *const i32 as *mut c_void,
            Arg::I64(v) => v as *const i64 as *mut c_void,
            Arg::F32(v) => v as *const f32 as *mut c_void,
            Arg::Segs(v) => v as *const Segs as *mut c_void,
        }
    }
}

/// A device allocation: its address, size, and whatever frees it when dropped.
pub struct DevBuf {
    ptr: u64,
    bytes: usize,
    _owner: Box<dyn Any + Send + Sync>,
}

impl DevBuf {
    /// Wraps memory a [`Device`] allocated; `owner` frees it on drop.
    pub fn new(ptr: u64, bytes: usize, owner: Box<dyn Any + Send + Sync>) -> DevBuf {
        DevBuf {
            ptr,
            bytes,
            _owner: owner,
        }
    }
    pub fn ptr(&self) -> u64 {
        self.ptr
    }
    pub fn bytes(&self) -> usize {
        self.bytes
    }
    /// The address `offset` bytes in.
    pub fn at(&self, offset: usize) -> u64 {
        debug_assert!(offset <= self.bytes);
        self.ptr + offset as u64
    }
}

impl std::fmt::Debug for DevBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DevBuf({:#x}, {} bytes)", self.ptr, self.bytes)
    }
}

/// A captured sequence of launches.
pub trait Graph: Send {
    /// Runs the captured launches again, in order, on the device's stream.
    fn launch(&self) -> Result<()>;
}

/// What the forward pass needs from a device. Calls are ordered (one stream); `download` and
/// `sync` wait for everything before them.
pub trait Device: Send + Sync {
    /// A one-line description (name, compute capability, memory).
    fn describe(&self) -> String;
    /// Free and total device memory, bytes.
    fn mem_info(&self) -> (usize, usize);
    /// Zeroed device memory.
    fn alloc(&self, bytes: usize) -> Result<DevBuf>;
    fn upload(&self, dst: u64, src: &[u8]) -> Result<()>;
    fn download(&self, src: u64, dst: &mut [u8]) -> Result<()>;
    fn launch(
        &self,
        kernel: &'static str,
        grid: [u32; 3],
        block: [u32; 3],
        args: &[Arg],
    ) -> Result<()>;
    fn sync(&self) -> Result<()>;
    /// Runs `f`, recording the launches it makes instead of running them, and returns them as
    /// a graph (nothing runs until the graph is launched).
    fn capture(&self, f: &mut dyn FnMut() -> Result<()>) -> Result<Box<dyn Graph>>;
}

/// `data` as bytes (for uploads of plain numbers).
pub fn as_bytes<T: Copy>(data: &[T]) -> &[u8] {
    // SAFETY: every T used here (f32, i32, u16, u32, u8) is plain data without padding; the
    // byte view covers exactly the slice's memory and lives as long as the borrow.
    unsafe { std::slice::from_raw_parts(data.as_ptr() as *const u8, std::mem::size_of_val(data)) }
}

/// `data` as mutable bytes (for downloads into plain numbers).
pub fn as_bytes_mut<T: Copy>(data: &mut [T]) -> &mut [u8] {
    // SAFETY: as in `as_bytes`; every bit pattern is a valid f32 / i32 / u16 / u8.
    unsafe {
        std::slice::from_raw_parts_mut(data.as_mut_ptr() as *mut u8, std::mem::size_of_val(data))
    }
}

// ---------------------------------------------------------------------------------------------
// The real device.

/// Why no CUDA device could be opened.
#[derive(Clone, Debug)]
pub enum OpenError {
    /// No driver, no device: the caller may run on the CPU instead.
    Unavailable(String),
    /// A device is there but cannot be used (too old, NVRTC missing, compile or driver error).
    Failed(Error),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Unavailable(why) => write!(f, "no CUDA device: {why}"),
            OpenError::Failed(e) => write!(f, "{e}"),
        }
    }
}

impl From<OpenError> for Error {
    fn from(e: OpenError) -> Error {
        match e {
            OpenError::Unavailable(_) => Error::unsupported(e.to_string()),
            OpenError::Failed(e) => e,
        }
    }
}

fn err_name(e: DriverError) -> String {
    let name = e
        .error_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|_| format!("{:?}", e.0));
    let text = e
        .error_string()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{name} ({text})")
}

/// A driver error as the crate's error: out of memory is named as such.
pub fn driver_error(what: &str, e: DriverError) -> Error {
    let kind = if e.0 == CUresult::CUDA_ERROR_OUT_OF_MEMORY {
        ErrorKind::Io
    } else {
        ErrorKind::Unsupported
    };
    Error::new(kind, format!("CUDA: {what}: {}", err_name(e)))
}

/// Runs `f`, turning a panic inside cudarc (it panics when a library it loads lazily is
/// missing) into an error.
fn no_panic<T>(what: &str, f: impl FnOnce() -> Result<T, OpenError>) -> Result<T, OpenError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(OpenError::Failed(Error::unsupported(format!(
                "CUDA: {what}: {msg}"
            ))))
        }
    }
}

/// Loads `BITNET_NVRTC_LIB` (a path to libnvrtc.so.*) if set, before cudarc looks for NVRTC by
/// name: a library already loaded is found under its soname.
fn preload_nvrtc() {
    #[cfg(target_os = "linux")]
    if let Some(path) = crate::env::var_os(crate::env::NVRTC_LIB) {
        use std::os::unix::ffi::OsStrExt;
        extern "C" {
            fn dlopen(filename: *const std::ffi::c_char, flag: i32) -> *mut c_void;
        }
        const RTLD_NOW: i32 = 2;
        const RTLD_GLOBAL: i32 = 0x100;
        if let Ok(c) = std::ffi::CString::new(path.as_bytes()) {
            // SAFETY: `c` is a NUL-terminated path; dlopen has no other preconditions. The
            // handle is deliberately kept (the library stays loaded for the process).
            unsafe { dlopen(c.as_ptr(), RTLD_NOW | RTLD_GLOBAL) };
        }
    }
}

/// Whether the NVRTC library can be loaded.
pub fn nvrtc_present() -> bool {
    preload_nvrtc();
    std::panic::catch_unwind(|| {
        // SAFETY: only probes for the library with dlopen.
        unsafe { cudarc::nvrtc::sys::is_culib_present() }
    })
    .unwrap_or(false)
}

/// Compiles `SOURCE` to PTX for `arch` (e.g. "compute_90").
pub fn compile(arch: &str) -> Result<String> {
    if !nvrtc_present() {
        return Err(Error::unsupported(
            "CUDA: NVRTC (libnvrtc.so.13 or .12) not found: install the CUDA toolkit's NVRTC and \
             put it on LD_LIBRARY_PATH, or set BITNET_NVRTC_LIB to its path",
        ));
    }
    let opts = CompileOptions {
        fmad: Some(false),
        options: vec![
            format!("--gpu-architecture={arch}"),
            "--std=c++17".to_string(),
        ],
        name: Some("kernels.cu".to_string()),
        ..Default::default()
    };
    let r = std::panic::catch_unwind(|| compile_ptx_with_opts(SOURCE, opts));
    match r {
        Ok(Ok(ptx)) => Ok(ptx.to_src()),
        Ok(Err(CompileError::CompileError { log, .. })) => Err(Error::unsupported(format!(
            "CUDA: NVRTC failed for {arch}: {}",
            log.to_string_lossy()
        ))),
        Ok(Err(e)) => Err(Error::unsupported(format!(
            "CUDA: NVRTC failed for {arch}: {e:?}"
        ))),
        Err(_) => Err(Error::unsupported("CUDA: NVRTC could not be loaded")),
    }
}

/// A GPU opened through the driver API: its context, one stream, the compiled kernels.
pub struct CudaDevice {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    funcs: HashMap<&'static str, CudaFunction>,
    desc: String,
    arch: String,
}

/// Device memory from `cuMemAlloc`, freed on drop.
struct CudaMem {
    ptr: u64,
    ctx: Arc<CudaContext>,
}

impl Drop for CudaMem {
    fn drop(&mut self) {
        if self.ctx.bind_to_thread().is_ok() {
            // SAFETY: ptr came from malloc_sync in this context and is freed once, here. Work
            // queued on it has finished: owners sync before dropping device state.
            let _ = unsafe { drv::free_sync(self.ptr) };
        }
    }
}

struct CudaGraphBox(CudaGraph);
// SAFETY: the graph is only launched by the thread that holds the model's run lock; cudarc
// marks it !Send only because graph objects must not be used concurrently.
unsafe impl Send for CudaGraphBox {}

impl Graph for CudaGraphBox {
    fn launch(&self) -> Result<()> {
        self.0
            .launch()
            .map_err(|e| driver_error("cuGraphLaunch", e))
    }
}

impl CudaDevice {
    /// Opens device `ordinal`, compiling the kernels for it.
    pub fn open(ordinal: usize) -> Result<Arc<CudaDevice>, OpenError> {
        no_panic("open", || Self::open_inner(ordinal))
    }

    fn open_inner(ordinal: usize) -> Result<Arc<CudaDevice>, OpenError> {
        // SAFETY: only probes for libcuda with dlopen.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(OpenError::Unavailable(
                "the NVIDIA driver library (libcuda.so.1) is not installed".into(),
            ));
        }
        if let Err(e) = drv::init() {
            return Err(match e.0 {
                CUresult::CUDA_ERROR_NO_DEVICE | CUresult::CUDA_ERROR_NOT_INITIALIZED => {
                    OpenError::Unavailable(format!("cuInit: {}", err_name(e)))
                }
                _ => OpenError::Failed(driver_error("cuInit", e)),
            });
        }
        let count = drv::device::get_count()
            .map_err(|e| OpenError::Failed(driver_error("cuDeviceGetCount", e)))?;
        if count <= 0 {
            return Err(OpenError::Unavailable("the driver sees no device".into()));
        }
        if ordinal >= count as usize {
            return Err(OpenError::Failed(Error::bad_input(format!(
                "CUDA: device {ordinal} asked for, but there are {count}"
            ))));
        }
        let fail = |what: &str, e: DriverError| OpenError::Failed(driver_error(what, e));
        let ctx = CudaContext::new(ordinal).map_err(|e| fail("cuDevicePrimaryCtxRetain", e))?;
        let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
        let cc = ctx
            .compute_capability()
            .map_err(|e| fail("cuDeviceGetAttribute", e))?;
        let total = ctx.total_mem().unwrap_or(0);
        if cc < MIN_CC {
            return Err(OpenError::Failed(Error::unsupported(format!(
                "CUDA: {name} has compute capability {}.{}; the kernels need {}.{} or newer (dp4a)",
                cc.0, cc.1, MIN_CC.0, MIN_CC.1
            ))));
        }
        // The device's own architecture, else the newest this NVRTC knows below it (the
        // driver compiles PTX of an older architecture for the device).
        let own = cc.0 * 10 + cc.1;
        let mut archs = vec![own];
        archs.extend(
            [120, 100, 90, 89, 87, 86, 80, 75, 70, 61]
                .into_iter()
                .filter(|&a| a < own),
        );
        let mut ptx = None;
        let mut errors = Vec::new();
        for a in archs {
            let arch = format!("compute_{a}");
            match compile(&arch) {
                Ok(p) => {
                    ptx = Some((arch, p));
                    break;
                }
                Err(e) => {
                    let missing = e.message.contains("NVRTC (libnvrtc");
                    errors.push(e.message);
                    if missing {
                        break;
                    }
                }
            }
        }
        let Some((arch, ptx)) = ptx else {
            return Err(OpenError::Failed(Error::unsupported(
                errors.first().cloned().unwrap_or_default(),
            )));
        };
        let module = ctx
            .load_module(cudarc::nvrtc::Ptx::from_src(ptx))
            .map_err(|e| fail("cuModuleLoadData (PTX of the kernels)", e))?;
        let mut funcs = HashMap::new();
        for &k in KERNELS {
            let f = module
                .load_function(k)
                .map_err(|e| fail(&format!("cuModuleGetFunction {k}"), e))?;
            funcs.insert(k, f);
        }
        let stream = ctx.new_stream().map_err(|e| fail("cuStreamCreate", e))?;
        let desc = format!(
            "{name} (compute capability {}.{}, {:.1} GiB, kernels built for {arch})",
            cc.0,
            cc.1,
            total as f64 / (1u64 << 30) as f64
        );
        Ok(Arc::new(CudaDevice {
            ctx,
            stream,
            funcs,
            desc,
            arch,
        }))
    }

    /// The architecture the kernels were compiled for.
    pub fn arch(&self) -> &str {
        &self.arch
    }

    fn bind(&self) -> Result<()> {
        self.ctx
            .bind_to_thread()
            .map_err(|e| driver_error("cuCtxSetCurrent", e))
    }
}

impl Device for CudaDevice {
    fn describe(&self) -> String {
        self.desc.clone()
    }

    fn mem_info(&self) -> (usize, usize) {
        self.ctx.mem_get_info().unwrap_or((0, 0))
    }

    fn alloc(&self, bytes: usize) -> Result<DevBuf> {
        self.bind()?;
        let n = bytes.max(1);
        // SAFETY: plain cuMemAlloc in the bound context; the memory is owned by the returned
        // CudaMem and zeroed below before anyone reads it.
        let ptr = unsafe { drv::malloc_sync(n) }.map_err(|e| {
            driver_error(
                &format!("cuMemAlloc of {:.1} MiB", n as f64 / (1 << 20) as f64),
                e,
            )
        })?;
        let mem = CudaMem {
            ptr,
            ctx: Arc::clone(&self.ctx),
        };
        // SAFETY: [ptr, ptr + n) was just allocated; the memset is ordered on our stream.
        unsafe { drv::memset_d8_async(ptr, 0, n, self.stream.cu_stream()) }
            .map_err(|e| driver_error("cuMemsetD8Async", e))?;
        Ok(DevBuf::new(ptr, bytes, Box::new(mem)))
    }

    fn upload(&self, dst: u64, src: &[u8]) -> Result<()> {
        if src.is_empty() {
            return Ok(());
        }
        self.bind()?;
        // SAFETY: the caller passes an address inside one of its allocations with room for
        // src.len() bytes. From pageable memory the copy has staged `src` when it returns.
        unsafe { drv::memcpy_htod_async(dst, src, self.stream.cu_stream()) }
            .map_err(|e| driver_error("cuMemcpyHtoDAsync", e))
    }

    fn download(&self, src: u64, dst: &mut [u8]) -> Result<()> {
        if dst.is_empty() {
            return Ok(());
        }
        self.bind()?;
        // SAFETY: as in upload; the stream is synchronized before `dst` is read.
        unsafe { drv::memcpy_dtoh_async(dst, src, self.stream.cu_stream()) }
            .map_err(|e| driver_error("cuMemcpyDtoHAsync", e))?;
        self.sync()
    }

    fn launch(
        &self,
        kernel: &'static str,
        grid: [u32; 3],
        block: [u32; 3],
        args: &[Arg],
    ) -> Result<()> {
        let f = self
            .funcs
            .get(kernel)
            .ok_or_else(|| Error::bad_input(format!("CUDA: no kernel {kernel}")))?;
        // The calling thread may not be the one that opened the device.
        self.bind()?;
        let mut params: Vec<*mut c_void> = args.iter().map(Arg::value_ptr).collect();
        // SAFETY: the argument list matches the kernel's parameters (ops.rs builds both from
        // the same signature), every pointer argument addresses live device memory of the
        // size the kernel reads, and `args` outlives the call (cuLaunchKernel copies the
        // values before returning).
        unsafe {
            drv::launch_kernel(
                f.cu_function(),
                (grid[0], grid[1], grid[2]),
                (block[0], block[1], block[2]),
                0,
                self.stream.cu_stream(),
                &mut params,
            )
        }
        .map_err(|e| driver_error(&format!("launch {kernel}"), e))
    }

    fn sync(&self) -> Result<()> {
        self.bind()?;
        self.stream
            .synchronize()
            .map_err(|e| driver_error("cuStreamSynchronize", e))
    }

    fn capture(&self, f: &mut dyn FnMut() -> Result<()>) -> Result<Box<dyn Graph>> {
        self.bind()?;
        self.stream
            .begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
            .map_err(|e| driver_error("cuStreamBeginCapture", e))?;
        let body = f();
        let end = self
            .stream
            .end_capture(cudarc::driver::sys::CUgraphInstantiate_flags(0));
        body?;
        match end {
            Ok(Some(g)) => Ok(Box::new(CudaGraphBox(g))),
            Ok(None) => Err(Error::unsupported("CUDA: the captured graph is empty")),
            Err(e) => Err(driver_error("cuStreamEndCapture", e)),
        }
    }
}

/// The first CUDA device, opened once per process (the reason when there is none or it is
/// unusable).
pub fn shared_device() -> std::result::Result<Arc<CudaDevice>, OpenError> {
    use std::sync::OnceLock;
    static DEV: OnceLock<std::result::Result<Arc<CudaDevice>, OpenError>> = OnceLock::new();
    DEV.get_or_init(|| CudaDevice::open(0)).clone()
}

/// Whether a usable CUDA device is present (opens it on first call).
pub fn available() -> bool {
    shared_device().is_ok()
}
