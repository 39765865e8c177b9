//! The CUDA driver API: the only code in precisiond that loads or calls CUDA.
//!
//! cudarc finds and dlopens the driver library (`libcuda.so.1` and its other names). Every entry point is then looked
//! up by name and called through a pointer typed here, with a plain `c_int` result, rather than through cudarc's
//! wrappers, because:
//! - a wrapper whose symbol is missing (an older driver) panics on first call; a lookup just fails;
//! - cudarc's `CUresult` is a Rust enum holding CUDA 11.4's error list, and a newer driver may return a code that
//!   list lacks (CUDA_ERROR_DEVICE_UNAVAILABLE, 46, is one): an enum with an unknown value is undefined behaviour,
//!   a `c_int` is not.
//!
//! Everything runs under `catch_unwind` too: cudarc's loader panics if the library vanishes between the probe and
//! the load, and a panic must never leave this module.

use std::ffi::{CStr, c_char, c_int, c_uint};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;

use cudarc::driver::sys;

use crate::error::{Diagnose, Fault};

const CUDA_SUCCESS: c_int = 0;

/// Why the driver could not tell something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CudaError {
    #[error("no CUDA driver library (libcuda.so.1) could be loaded")]
    NoDriver,
    #[error("the CUDA driver has no `{0}` (a driver older than CUDA 11.4?)")]
    MissingSymbol(&'static str),
    #[error("{call} failed: {name} ({code})")]
    Call { call: &'static str, code: c_int, name: String },
    #[error("the CUDA driver could not be queried: {0}")]
    Panicked(String),
}

impl Diagnose for CudaError {
    fn fault(&self) -> Fault {
        Fault::Environment
    }

    fn hint(&self) -> Option<String> {
        match self {
            CudaError::NoDriver => Some(
                "install the NVIDIA driver, or put the folder holding libcuda.so.1 (on Jetson \
                 /usr/lib/aarch64-linux-gnu/tegra) in the ld cache or LD_LIBRARY_PATH"
                    .into(),
            ),
            CudaError::Call { code: 34, .. } => {
                Some("a CUDA toolkit stub libcuda.so is on the library path ahead of the real driver".into())
            }
            CudaError::Call { code: 35, .. } => Some("the NVIDIA driver is older than this CUDA needs".into()),
            _ => None,
        }
    }
}

/// What the driver reports, as far as it got; `problems` says why anything is missing.
#[derive(Debug, Default)]
pub(super) struct Probe {
    /// `cuDriverGetVersion`: 13000 for CUDA 13.0.
    pub driver_version: Option<c_int>,
    pub devices: Vec<Device>,
    pub problems: Vec<CudaError>,
}

#[derive(Debug)]
pub(super) struct Device {
    pub name: String,
    pub compute_capability: (c_int, c_int),
    pub memory_total_bytes: u64,
    pub uuid: Option<[u8; 16]>,
    pub integrated: bool,
}

type Init = unsafe extern "C" fn(c_uint) -> c_int;
type GetInt = unsafe extern "C" fn(*mut c_int) -> c_int;
type DeviceGet = unsafe extern "C" fn(*mut sys::CUdevice, c_int) -> c_int;
type DeviceGetName = unsafe extern "C" fn(*mut c_char, c_int, sys::CUdevice) -> c_int;
// The attribute is a C enum, passed as an int.
type DeviceGetAttribute = unsafe extern "C" fn(*mut c_int, c_int, sys::CUdevice) -> c_int;
type DeviceTotalMem = unsafe extern "C" fn(*mut usize, sys::CUdevice) -> c_int;
type DeviceGetUuid = unsafe extern "C" fn(*mut sys::CUuuid, sys::CUdevice) -> c_int;
type GetErrorName = unsafe extern "C" fn(c_int, *mut *const c_char) -> c_int;
type PrimaryCtxRetain = unsafe extern "C" fn(*mut sys::CUcontext, sys::CUdevice) -> c_int;
type PrimaryCtxRelease = unsafe extern "C" fn(sys::CUdevice) -> c_int;
type CtxPush = unsafe extern "C" fn(sys::CUcontext) -> c_int;
type CtxPop = unsafe extern "C" fn(*mut sys::CUcontext) -> c_int;
type MemGetInfo = unsafe extern "C" fn(*mut usize, *mut usize) -> c_int;

/// The entry points, resolved once the library is loaded (it then stays loaded: cudarc keeps it in a static).
struct Api {
    init: Result<Init, CudaError>,
    driver_get_version: Result<GetInt, CudaError>,
    device_get_count: Result<GetInt, CudaError>,
    device_get: Result<DeviceGet, CudaError>,
    device_get_name: Result<DeviceGetName, CudaError>,
    device_get_attribute: Result<DeviceGetAttribute, CudaError>,
    device_total_mem: Result<DeviceTotalMem, CudaError>,
    // v1 first: under MIG the driver API gives v2 the MIG instance's UUID, while nvidia-smi --query-gpu prints the
    // GPU's. CUDA 13 headers drop v1 but the drivers keep exporting it for older binaries; v2 is the fallback.
    device_get_uuid: Result<DeviceGetUuid, CudaError>,
    device_get_uuid_v2: Result<DeviceGetUuid, CudaError>,
    get_error_name: Result<GetErrorName, CudaError>,
    primary_ctx_retain: Result<PrimaryCtxRetain, CudaError>,
    primary_ctx_release: Result<PrimaryCtxRelease, CudaError>,
    ctx_push: Result<CtxPush, CudaError>,
    ctx_pop: Result<CtxPop, CudaError>,
    mem_get_info: Result<MemGetInfo, CudaError>,
}

fn api() -> Result<&'static Api, CudaError> {
    static API: OnceLock<Api> = OnceLock::new();
    if let Some(api) = API.get() {
        return Ok(api);
    }
    // Not cached when absent: a driver installed while the daemon runs is found on the next call.
    // SAFETY: dlopen of the driver library; its initialisers are the driver's own.
    if !unsafe { sys::is_culib_present() } {
        return Err(CudaError::NoDriver);
    }
    // SAFETY: the probe above found a loadable library, so cudarc's loader returns it.
    let lib = unsafe { sys::culib() };
    macro_rules! symbol {
        ($name:literal) => {
            // SAFETY: the pointer type is the driver API's C prototype for this exported name (cuda.h, 11.4).
            unsafe { lib.get(concat!($name, "\0").as_bytes()) }.map(|s| *s).map_err(|_| CudaError::MissingSymbol($name))
        };
    }
    let api = Api {
        init: symbol!("cuInit"),
        driver_get_version: symbol!("cuDriverGetVersion"),
        device_get_count: symbol!("cuDeviceGetCount"),
        device_get: symbol!("cuDeviceGet"),
        device_get_name: symbol!("cuDeviceGetName"),
        device_get_attribute: symbol!("cuDeviceGetAttribute"),
        device_total_mem: symbol!("cuDeviceTotalMem_v2"),
        device_get_uuid: symbol!("cuDeviceGetUuid"),
        device_get_uuid_v2: symbol!("cuDeviceGetUuid_v2"),
        get_error_name: symbol!("cuGetErrorName"),
        primary_ctx_retain: symbol!("cuDevicePrimaryCtxRetain"),
        primary_ctx_release: symbol!("cuDevicePrimaryCtxRelease_v2"),
        ctx_push: symbol!("cuCtxPushCurrent_v2"),
        ctx_pop: symbol!("cuCtxPopCurrent_v2"),
        mem_get_info: symbol!("cuMemGetInfo_v2"),
    };
    Ok(API.get_or_init(|| api))
}

impl Api {
    fn check(&self, call: &'static str, code: c_int) -> Result<(), CudaError> {
        if code == CUDA_SUCCESS {
            return Ok(());
        }
        let mut text: *const c_char = std::ptr::null();
        let name = match &self.get_error_name {
            // SAFETY: cuGetErrorName writes a pointer to a static string, or fails for an unknown code.
            Ok(f) if unsafe { f(code, &mut text) } == CUDA_SUCCESS && !text.is_null() => {
                // SAFETY: the driver's static, NUL-terminated name.
                unsafe { CStr::from_ptr(text) }.to_string_lossy().into_owned()
            }
            // Stub libraries (the toolkit's link-time libcuda.so) answer no names; say the common ones anyway.
            _ => known_error_name(code).unwrap_or("unknown error").to_owned(),
        };
        Err(CudaError::Call { call, code, name })
    }

    fn init(&self) -> Result<(), CudaError> {
        let init = self.init.clone()?;
        // SAFETY: cuInit(0) may be called any number of times.
        self.check("cuInit", unsafe { init(0) })
    }

    fn device(&self, ordinal: c_int) -> Result<sys::CUdevice, CudaError> {
        let get = self.device_get.clone()?;
        let mut device: sys::CUdevice = 0;
        // SAFETY: writes one CUdevice.
        self.check("cuDeviceGet", unsafe { get(&mut device, ordinal) })?;
        Ok(device)
    }

    fn attribute(&self, device: sys::CUdevice, attribute: sys::CUdevice_attribute) -> Result<c_int, CudaError> {
        let get = self.device_get_attribute.clone()?;
        let mut value: c_int = 0;
        // SAFETY: writes one int; `attribute` is a valid enumerator.
        self.check("cuDeviceGetAttribute", unsafe { get(&mut value, attribute as c_int, device) })?;
        Ok(value)
    }

    fn describe(&self, device: sys::CUdevice, problems: &mut Vec<CudaError>) -> Result<Device, CudaError> {
        let get_name = self.device_get_name.clone()?;
        let mut buffer = [0 as c_char; 256];
        // SAFETY: the driver writes at most `len` bytes, NUL included.
        self.check("cuDeviceGetName", unsafe { get_name(buffer.as_mut_ptr(), buffer.len() as c_int, device) })?;
        let bytes: Vec<u8> = buffer.iter().map(|&c| c as u8).take_while(|&b| b != 0).collect();
        let name = String::from_utf8_lossy(&bytes).trim().to_owned();

        use sys::CUdevice_attribute::*;
        let major = self.attribute(device, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
        let minor = self.attribute(device, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;

        let total_mem = self.device_total_mem.clone()?;
        let mut total: usize = 0;
        // SAFETY: writes one size_t.
        self.check("cuDeviceTotalMem", unsafe { total_mem(&mut total, device) })?;

        // Secondary facts: their absence is reported, the device still counts.
        let integrated = self.attribute(device, CU_DEVICE_ATTRIBUTE_INTEGRATED).map_err(|e| problems.push(e)).ok();
        let uuid = self.uuid(device).map_err(|e| problems.push(e)).ok();
        Ok(Device {
            name,
            compute_capability: (major, minor),
            memory_total_bytes: total as u64,
            uuid,
            integrated: integrated.is_some_and(|v| v != 0),
        })
    }

    fn uuid(&self, device: sys::CUdevice) -> Result<[u8; 16], CudaError> {
        let (call, get) = match (&self.device_get_uuid, &self.device_get_uuid_v2) {
            (Ok(v1), _) => ("cuDeviceGetUuid", *v1),
            (Err(_), Ok(v2)) => ("cuDeviceGetUuid_v2", *v2),
            (Err(e), Err(_)) => return Err(e.clone()),
        };
        let mut uuid = sys::CUuuid { bytes: [0; 16] };
        // SAFETY: writes one CUuuid (16 bytes).
        self.check(call, unsafe { get(&mut uuid, device) })?;
        Ok(uuid.bytes.map(|b| b as u8))
    }
}

/// Everything the driver says about itself and its devices. Never panics.
pub(super) fn probe() -> Probe {
    catch_unwind(AssertUnwindSafe(probe_unguarded))
        .unwrap_or_else(|panic| Probe { problems: vec![CudaError::Panicked(panic_text(&*panic))], ..Probe::default() })
}

fn probe_unguarded() -> Probe {
    let mut probe = Probe::default();
    let api = match api() {
        Ok(api) => api,
        Err(e) => {
            probe.problems.push(e);
            return probe;
        }
    };
    // Before cuInit on purpose: the version is known even when no device can be initialised.
    match api.driver_get_version.clone() {
        Ok(get_version) => {
            let mut version: c_int = 0;
            // SAFETY: writes one int; valid before cuInit.
            match api.check("cuDriverGetVersion", unsafe { get_version(&mut version) }) {
                Ok(()) if version > 0 => probe.driver_version = Some(version),
                Ok(()) => {}
                Err(e) => probe.problems.push(e),
            }
        }
        Err(e) => probe.problems.push(e),
    }
    if let Err(e) = api.init() {
        probe.problems.push(e);
        return probe;
    }
    let count = match api.device_get_count.clone() {
        Ok(get_count) => {
            let mut count: c_int = 0;
            // SAFETY: writes one int.
            match api.check("cuDeviceGetCount", unsafe { get_count(&mut count) }) {
                Ok(()) => count,
                Err(e) => {
                    probe.problems.push(e);
                    0
                }
            }
        }
        Err(e) => {
            probe.problems.push(e);
            0
        }
    };
    for ordinal in 0..count.max(0) {
        let mut problems = Vec::new();
        match api.device(ordinal).and_then(|d| api.describe(d, &mut problems)) {
            Ok(device) => probe.devices.push(device),
            Err(e) => probe.problems.push(e),
        }
        probe.problems.extend(problems);
    }
    probe
}

/// Free memory on device `ordinal` (`cuMemGetInfo` in its primary context). Never panics.
///
/// Retaining the primary context creates it if this process has none: hundreds of MB on a discrete GPU and a
/// noticeable pause, so the daemon should ask only when it is about to build.
pub(super) fn free_memory(ordinal: usize) -> Result<u64, CudaError> {
    catch_unwind(AssertUnwindSafe(|| free_memory_unguarded(ordinal)))
        .unwrap_or_else(|panic| Err(CudaError::Panicked(panic_text(&*panic))))
}

fn free_memory_unguarded(ordinal: usize) -> Result<u64, CudaError> {
    let api = api()?;
    let (retain, release) = (api.primary_ctx_retain.clone()?, api.primary_ctx_release.clone()?);
    let (push, pop, mem_get_info) = (api.ctx_push.clone()?, api.ctx_pop.clone()?, api.mem_get_info.clone()?);
    api.init()?;
    let ordinal = c_int::try_from(ordinal).map_err(|_| CudaError::Call {
        call: "cuDeviceGet",
        code: 101,
        name: "CUDA_ERROR_INVALID_DEVICE".into(),
    })?;
    let device = api.device(ordinal)?;
    let mut context: sys::CUcontext = std::ptr::null_mut();
    // SAFETY: writes one context handle; balanced by the release below.
    api.check("cuDevicePrimaryCtxRetain", unsafe { retain(&mut context, device) })?;
    // Pushed, not set: the calling thread's current context (if any) is back in place afterwards.
    // SAFETY: `context` was just retained.
    let result = api.check("cuCtxPushCurrent", unsafe { push(context) }).and_then(|()| {
        let (mut free, mut total) = (0usize, 0usize);
        // SAFETY: writes two size_t; a context is current.
        let measured = api.check("cuMemGetInfo", unsafe { mem_get_info(&mut free, &mut total) });
        let mut popped: sys::CUcontext = std::ptr::null_mut();
        // SAFETY: pops the context pushed above.
        let _ = unsafe { pop(&mut popped) };
        measured.map(|()| free as u64)
    });
    // SAFETY: balances the retain above.
    let _ = unsafe { release(device) };
    result
}

fn known_error_name(code: c_int) -> Option<&'static str> {
    Some(match code {
        3 => "CUDA_ERROR_NOT_INITIALIZED",
        34 => "CUDA_ERROR_STUB_LIBRARY",
        35 => "CUDA_ERROR_INSUFFICIENT_DRIVER",
        46 => "CUDA_ERROR_DEVICE_UNAVAILABLE",
        100 => "CUDA_ERROR_NO_DEVICE",
        101 => "CUDA_ERROR_INVALID_DEVICE",
        304 => "CUDA_ERROR_OPERATING_SYSTEM",
        802 => "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH",
        803 => "CUDA_ERROR_SYSTEM_NOT_READY",
        999 => "CUDA_ERROR_UNKNOWN",
        _ => return None,
    })
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic without a message".into())
}

/// `GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, lowercase, as nvidia-smi prints a GPU UUID.
pub(super) fn format_uuid(bytes: &[u8; 16]) -> String {
    let mut out = String::from("GPU-");
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// `cuDriverGetVersion`'s 13000 → `13.0`, 12060 → `12.6`, 11040 → `11.4`.
pub(super) fn format_driver_version(version: c_int) -> String {
    format!("{}.{}", version / 1000, (version % 1000) / 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_is_formatted_as_nvidia_smi_does() {
        let bytes = [0x3a, 0x5b, 0x9f, 0x10, 0x2c, 0x4d, 0x8e, 0x71, 0xa0, 0x0b, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54];
        assert_eq!(format_uuid(&bytes), "GPU-3a5b9f10-2c4d-8e71-a00b-fedcba987654");
        assert_eq!(format_uuid(&[0; 16]), "GPU-00000000-0000-0000-0000-000000000000");
    }

    #[test]
    fn driver_api_version_reads_as_major_minor() {
        assert_eq!(format_driver_version(13000), "13.0");
        assert_eq!(format_driver_version(12060), "12.6");
        assert_eq!(format_driver_version(11040), "11.4");
        assert_eq!(format_driver_version(12020), "12.2");
    }

    #[test]
    fn without_a_driver_the_probe_reports_why_and_does_not_panic() {
        // The development machines have no driver; on a GPU machine this only checks that nothing panics.
        let probe = probe();
        if probe.devices.is_empty() {
            assert!(!probe.problems.is_empty(), "no device and no reason: {probe:?}");
        }
        let _ = free_memory(usize::MAX);
        let _ = free_memory(1000);
    }
}
