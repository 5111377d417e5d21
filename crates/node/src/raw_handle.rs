//! Plain N-API callbacks over a raw External: the hot calls of Connection and Queue (a small
//! send, an uncontended put or get) cost less than napi-rs's class wrappers and generated
//! argument conversions around them, so those callbacks take their handle and their few
//! arguments themselves, through these helpers.

use std::ptr;

use napi::sys;

use crate::error::coded;

/// What a raw External holds: a tag naming its kind (a handle of another kind, or any other
/// External, is refused rather than misread), then the state.
#[repr(C)]
struct RawHandle<T> {
    magic: u64,
    inner: T,
}

unsafe extern "C" fn drop_handle<T>(_env: sys::napi_env, data: *mut std::ffi::c_void, _hint: *mut std::ffi::c_void) {
    drop(unsafe { Box::from_raw(data as *mut RawHandle<T>) });
}

/// A new External holding `inner` under the tag `magic`, dropped when collected.
pub unsafe fn new_handle<T>(env: sys::napi_env, magic: u64, inner: T, what: &str) -> Result<sys::napi_value, napi::Error> {
    let raw = Box::into_raw(Box::new(RawHandle { magic, inner }));
    let mut value = ptr::null_mut();
    if unsafe { sys::napi_create_external(env, raw.cast(), Some(drop_handle::<T>), ptr::null_mut(), &mut value) } != sys::Status::napi_ok {
        drop(unsafe { Box::from_raw(raw) });
        return Err(coded("OS", format!("errno=0 cannot create a {what} handle")));
    }
    Ok(value)
}

/// The state of the handle `value` made by `new_handle` with the same `magic`.
pub unsafe fn handle_ref<'a, T>(env: sys::napi_env, value: sys::napi_value, magic: u64, what: &str) -> Result<&'a T, napi::Error> {
    let bad = || coded("Value", format!("bad {what} handle"));
    let mut data = ptr::null_mut();
    if value.is_null() || unsafe { sys::napi_get_value_external(env, value, &mut data) } != sys::Status::napi_ok || data.is_null() {
        return Err(bad());
    }
    let raw = unsafe { &*(data as *const RawHandle<T>) };
    if raw.magic != magic {
        return Err(bad());
    }
    Ok(&raw.inner)
}

/// The arguments of a fast call: its handle (of `what` kind, tagged `magic`) and up to three
/// more values (null when absent); fewer than `min_args` arguments in all is an error.
pub unsafe fn fast_args<'a, T>(
    env: sys::napi_env,
    info: sys::napi_callback_info,
    magic: u64,
    min_args: usize,
    what: &str,
) -> Result<(&'a T, [sys::napi_value; 3]), napi::Error> {
    let mut argv = [ptr::null_mut(); 4];
    let mut argc = 4usize;
    if unsafe { sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), ptr::null_mut()) } != sys::Status::napi_ok
        || argc < min_args.max(1)
    {
        return Err(coded("Value", format!("bad {what} handle")));
    }
    let inner = unsafe { handle_ref(env, argv[0], magic, what) }?;
    Ok((inner, [argv[1], argv[2], argv[3]]))
}

/// Throw `e` (its message carries the code src/errors.ts maps to a class); what a callback
/// returns then.
pub unsafe fn throw(env: sys::napi_env, e: napi::Error) -> sys::napi_value {
    let msg = std::ffi::CString::new(e.reason.replace('\0', " ")).unwrap_or_default();
    unsafe { sys::napi_throw_error(env, ptr::null(), msg.as_ptr()) };
    ptr::null_mut()
}

/// A number argument; `dflt` when absent or not a number.
pub unsafe fn f64_arg(env: sys::napi_env, v: sys::napi_value, dflt: f64) -> f64 {
    let mut t = dflt;
    if v.is_null() || unsafe { sys::napi_get_value_double(env, v, &mut t) } != sys::Status::napi_ok {
        return dflt;
    }
    t
}

/// The bytes of a Buffer argument (empty for a zero-length one); `msg` as a ValueError
/// otherwise. The slice lives as long as the call's handle scope.
pub unsafe fn buffer_arg<'a>(env: sys::napi_env, v: sys::napi_value, msg: &str) -> Result<&'a [u8], napi::Error> {
    let (mut p, mut len) = (ptr::null_mut(), 0usize);
    if v.is_null() || unsafe { sys::napi_get_buffer_info(env, v, &mut p, &mut len) } != sys::Status::napi_ok {
        return Err(coded("Value", msg));
    }
    Ok(if len == 0 { &[] } else { unsafe { std::slice::from_raw_parts(p as *const u8, len) } })
}

/// A fast call's callback.
pub type FastCall = unsafe extern "C" fn(sys::napi_env, sys::napi_callback_info) -> sys::napi_value;

/// An object whose properties are the plain functions `calls` (name, callback): what the
/// `*_fast_paths` exports return to JavaScript.
pub unsafe fn fast_paths_object(env: sys::napi_env, calls: &[(&std::ffi::CStr, FastCall)], what: &str) -> Result<sys::napi_value, napi::Error> {
    let mut obj = ptr::null_mut();
    if unsafe { sys::napi_create_object(env, &mut obj) } != sys::Status::napi_ok {
        return Err(coded("OS", format!("errno=0 cannot create the {what} fast paths")));
    }
    for (name, cb) in calls {
        let mut f = ptr::null_mut();
        if unsafe { sys::napi_create_function(env, name.as_ptr(), -1, Some(*cb), ptr::null_mut(), &mut f) } != sys::Status::napi_ok
            || unsafe { sys::napi_set_named_property(env, obj, name.as_ptr(), f) } != sys::Status::napi_ok
        {
            return Err(coded("OS", format!("errno=0 cannot create the {what} fast paths")));
        }
    }
    Ok(obj)
}
