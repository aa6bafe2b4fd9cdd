//! A thin, safe wrapper over the TurboJPEG 3 C API (libjpeg-turbo), used for
//! both decoding (DCT-domain scaled, straight to Y/Cb/Cr planes) and encoding.
//! The `turbojpeg` crate's high-level types do not expose the decoder limits
//! we need (stop on warning, max pixels, max memory), hence the raw calls.

use std::cell::RefCell;
use std::ffi::CStr;

use turbojpeg::raw;

use crate::planes::{Plane, Planes, Rgb};

/// What the header says, read before any pixel is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub width: u32,
    pub height: u32,
    pub subsamp: i32,
    pub colorspace: i32,
    pub lossless: bool,
    pub progressive: bool,
}

impl Header {
    pub fn is_gray(&self) -> bool {
        self.colorspace == raw::TJCS_TJCS_GRAY as i32
    }

    /// CMYK and YCCK JPEGs (Adobe) cannot be decoded to Y/Cb/Cr planes.
    pub fn is_cmyk(&self) -> bool {
        self.colorspace == raw::TJCS_TJCS_CMYK as i32
            || self.colorspace == raw::TJCS_TJCS_YCCK as i32
    }

    /// Decoded samples per pixel, in halves (4:2:0 has 1.5: 3 halves). An
    /// unknown layout counts as four full components, the most JPEG has.
    pub fn half_samples_per_pixel(&self) -> u64 {
        if self.is_cmyk() {
            return 8;
        }
        match self.subsamp {
            raw::TJSAMP_TJSAMP_444 => 6,
            raw::TJSAMP_TJSAMP_422 | raw::TJSAMP_TJSAMP_440 => 4,
            raw::TJSAMP_TJSAMP_420 | raw::TJSAMP_TJSAMP_411 | raw::TJSAMP_TJSAMP_441 => 3,
            raw::TJSAMP_TJSAMP_GRAY => 2,
            _ => 8,
        }
    }
}

/// Owns one `tjhandle`; destroyed on drop, even when a caller bails early.
struct Handle(raw::tjhandle);

impl Handle {
    fn new(kind: raw::TJINIT) -> Result<Handle, String> {
        // SAFETY: tj3Init has no preconditions; a null return means failure.
        let ptr = unsafe { raw::tj3Init(kind as libc::c_int) };
        if ptr.is_null() {
            return Err("libjpeg-turbo could not allocate a handle".into());
        }
        Ok(Handle(ptr))
    }

    fn error(&self) -> String {
        // SAFETY: the handle is live; tj3GetErrorStr returns a NUL-terminated static or per-handle buffer.
        unsafe { CStr::from_ptr(raw::tj3GetErrorStr(self.0)) }
            .to_string_lossy()
            .into_owned()
    }

    fn check(&self, rc: libc::c_int) -> Result<(), String> {
        if rc == 0 {
            Ok(())
        } else {
            Err(self.error())
        }
    }

    fn set(&self, param: raw::TJPARAM, value: i32) -> Result<(), String> {
        // SAFETY: live handle, plain integer parameter.
        self.check(unsafe { raw::tj3Set(self.0, param as libc::c_int, value) })
    }

    fn get(&self, param: raw::TJPARAM) -> i32 {
        // SAFETY: live handle.
        unsafe { raw::tj3Get(self.0, param as libc::c_int) }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle came from tj3Init and is destroyed exactly once.
        unsafe { raw::tj3Destroy(self.0) }
    }
}

/// Decoder limits handed to libjpeg-turbo itself, as a second line of defence
/// behind our own header checks.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    pub max_pixels: u64,
    /// Progressive JPEGs with thousands of scans are a known CPU-exhaustion trick.
    pub max_scans: i32,
    pub max_memory_mb: i32,
}

pub struct Decoder {
    handle: Handle,
    header: Header,
    max_memory_mb: i32,
}

extern "C" {
    /// csrc/keep_decode.c: returns 0 (decoded), 1 (error, message in `msg`)
    /// or 2 (not a single-scan 8-bit YCbCr JPEG: use TurboJPEG instead).
    fn sy_decode_planes_keep(
        jpeg: *const u8,
        len: libc::c_ulong,
        num: libc::c_int,
        max_memory_mb: libc::c_int,
        keep_x0: libc::c_uint,
        keep_x1: libc::c_uint,
        planes: *const *mut u8,
        widths: *const libc::c_uint,
        heights: *const libc::c_uint,
        msg: *mut libc::c_char,
        msg_len: libc::size_t,
    ) -> libc::c_int;
}

/// Luma columns `[x0, x1)` of the scaled image that the variants read; the
/// inverse DCT of blocks outside them is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepColumns {
    pub x0: u32,
    pub x1: u32,
}

impl Decoder {
    /// Parses the headers only. Truncation or corruption in the pixel data is
    /// found later, by `decode_planes` (which stops on the first warning).
    pub fn new(jpeg: &[u8], limits: DecodeLimits) -> Result<Decoder, String> {
        let handle = Handle::new(raw::TJINIT_TJINIT_DECOMPRESS)?;
        // A premature end of data is only a warning to libjpeg (it pads with grey);
        // a truncated upload must be refused instead.
        handle.set(raw::TJPARAM_TJPARAM_STOPONWARNING, 1)?;
        handle.set(raw::TJPARAM_TJPARAM_SCANLIMIT, limits.max_scans)?;
        handle.set(raw::TJPARAM_TJPARAM_MAXMEMORY, limits.max_memory_mb)?;
        handle.set(
            raw::TJPARAM_TJPARAM_MAXPIXELS,
            limits.max_pixels.min(i32::MAX as u64) as i32,
        )?;
        // Keep no markers: we read EXIF and ICC ourselves from the raw bytes.
        handle.set(raw::TJPARAM_TJPARAM_SAVEMARKERS, 0)?;
        // SAFETY: live handle; pointer and length describe a valid slice.
        handle.check(unsafe {
            raw::tj3DecompressHeader(handle.0, jpeg.as_ptr(), jpeg.len() as raw::size_t)
        })?;
        let header = Header {
            width: dimension(handle.get(raw::TJPARAM_TJPARAM_JPEGWIDTH))?,
            height: dimension(handle.get(raw::TJPARAM_TJPARAM_JPEGHEIGHT))?,
            subsamp: handle.get(raw::TJPARAM_TJPARAM_SUBSAMP),
            colorspace: handle.get(raw::TJPARAM_TJPARAM_COLORSPACE),
            lossless: handle.get(raw::TJPARAM_TJPARAM_LOSSLESS) != 0,
            progressive: handle.get(raw::TJPARAM_TJPARAM_PROGRESSIVE) != 0,
        };
        if handle.get(raw::TJPARAM_TJPARAM_PRECISION) != 8 {
            return Err("only 8-bit JPEGs are supported".into());
        }
        Ok(Decoder {
            handle,
            header,
            max_memory_mb: limits.max_memory_mb,
        })
    }

    pub fn header(&self) -> Header {
        self.header
    }

    /// Sets the DCT scaling to `num/8`, in lowest terms (TurboJPEG only
    /// recognises its table entries, e.g. 1/2 but not 4/8).
    fn set_scale(&mut self, num: u32) -> Result<(), String> {
        if !(1..=8).contains(&num) {
            return Err(format!("scale {num}/8 out of range"));
        }
        if self.header.lossless && num != 8 {
            return Err("lossless JPEGs cannot be scaled".into());
        }
        let gcd = [8, 4, 2, 1]
            .into_iter()
            .find(|d| num.is_multiple_of(*d))
            .expect("1 divides everything");
        let factor = raw::tjscalingfactor {
            num: (num / gcd) as libc::c_int,
            denom: (8 / gcd) as libc::c_int,
        };
        // SAFETY: live handle.
        self.handle
            .check(unsafe { raw::tj3SetScalingFactor(self.handle.0, factor) })
    }

    /// Decodes at `num/8` scale straight into Y/Cb/Cr planes, skipping the
    /// colour conversion and chroma upsampling that an RGB decode would do.
    /// Grey images yield a Y plane only. With `keep`, only those columns are
    /// guaranteed to hold the image (the rest may be mid-grey).
    pub fn decode_planes(
        &mut self,
        jpeg: &[u8],
        num: u32,
        keep: Option<KeepColumns>,
    ) -> Result<Planes, String> {
        self.set_scale(num)?;
        let width = scaled(self.header.width, num);
        let height = scaled(self.header.height, num);
        let subsamp = self.header.subsamp;
        if subsamp == raw::TJSAMP_TJSAMP_UNKNOWN {
            return Err("unusual chroma subsampling".into());
        }
        let count = if self.header.is_gray() { 1 } else { 3 };
        let mut planes: Vec<Plane> = (0..count)
            .map(|i| {
                // SAFETY: pure size computations on plain integers.
                let w = unsafe { raw::tj3YUVPlaneWidth(i, width as i32, subsamp) };
                let h = unsafe { raw::tj3YUVPlaneHeight(i, height as i32, subsamp) };
                if w <= 0 || h <= 0 {
                    return Err(format!("bad plane size for component {i}"));
                }
                Ok(Plane::new(w as u32, h as u32))
            })
            .collect::<Result<_, String>>()?;
        let mut ptrs: Vec<*mut u8> = planes.iter_mut().map(|p| p.data.as_mut_ptr()).collect();
        let partial = keep.filter(|k| k.x0 > 0 || k.x1 < width);
        if let (Some(keep), 3, false) = (partial, count, self.header.lossless) {
            let widths: Vec<libc::c_uint> = planes.iter().map(|p| p.width).collect();
            let heights: Vec<libc::c_uint> = planes.iter().map(|p| p.height).collect();
            let mut msg = [0 as libc::c_char; 200];
            // SAFETY: three plane buffers of exactly widths[i] × heights[i]
            // bytes; the C side writes only within them and NUL-terminates msg.
            let rc = unsafe {
                sy_decode_planes_keep(
                    jpeg.as_ptr(),
                    jpeg.len() as libc::c_ulong,
                    num as libc::c_int,
                    self.max_memory_mb,
                    keep.x0,
                    keep.x1,
                    ptrs.as_ptr(),
                    widths.as_ptr(),
                    heights.as_ptr(),
                    msg.as_mut_ptr(),
                    msg.len(),
                )
            };
            match rc {
                0 => return Ok(Planes::from_jpeg(width, height, planes)),
                1 => {
                    // SAFETY: the C side NUL-terminated it.
                    let msg = unsafe { CStr::from_ptr(msg.as_ptr()) };
                    return Err(msg.to_string_lossy().into_owned());
                }
                _ => {} // not a file for that path: TurboJPEG decodes it whole
            }
        }
        let mut strides: Vec<libc::c_int> = planes.iter().map(|p| p.width as libc::c_int).collect();
        // SAFETY: each plane buffer is exactly stride × plane height bytes, as
        // tj3YUVPlaneWidth/Height computed for this scaled size and subsampling.
        self.handle.check(unsafe {
            raw::tj3DecompressToYUVPlanes8(
                self.handle.0,
                jpeg.as_ptr(),
                jpeg.len() as raw::size_t,
                ptrs.as_mut_ptr(),
                strides.as_mut_ptr(),
            )
        })?;
        Ok(Planes::from_jpeg(width, height, planes))
    }

    /// Decodes at `num/8` scale to packed RGB (CMYK/YCCK inputs are converted).
    pub fn decode_rgb(&mut self, jpeg: &[u8], num: u32) -> Result<(u32, u32, Vec<u8>), String> {
        self.set_scale(num)?;
        let width = scaled(self.header.width, num);
        let height = scaled(self.header.height, num);
        let cmyk = self.header.is_cmyk();
        let (format, channels) = if cmyk {
            (raw::TJPF_TJPF_CMYK, 4)
        } else {
            (raw::TJPF_TJPF_RGB, 3)
        };
        let mut buf = vec![0u8; width as usize * height as usize * channels];
        // SAFETY: buf holds width × height × channels bytes, with pitch = width × channels.
        self.handle.check(unsafe {
            raw::tj3Decompress8(
                self.handle.0,
                jpeg.as_ptr(),
                jpeg.len() as raw::size_t,
                buf.as_mut_ptr(),
                (width as usize * channels) as libc::c_int,
                format,
            )
        })?;
        if cmyk {
            buf = cmyk_to_rgb(&buf);
        }
        Ok((width, height, buf))
    }
}

/// Adobe CMYK JPEGs store inverted ink values; the naive conversion is what
/// browsers do without a profile.
fn cmyk_to_rgb(cmyk: &[u8]) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(cmyk.len() / 4 * 3);
    for px in cmyk.chunks_exact(4) {
        let k = px[3] as u32;
        rgb.extend(px[..3].iter().map(|&c| ((c as u32 * k + 127) / 255) as u8));
    }
    rgb
}

/// TJSCALED: ceil(dimension × num / 8).
pub fn scaled(dimension: u32, num: u32) -> u32 {
    ((dimension as u64 * num as u64).div_ceil(8)) as u32
}

fn dimension(v: i32) -> Result<u32, String> {
    u32::try_from(v)
        .ok()
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("bad dimension {v}"))
}

/// Compresses planes into a baseline 4:2:0 JPEG (or greyscale) with no
/// metadata: libjpeg-turbo writes only the JFIF header.
pub fn encode_planes(planes: &Planes, quality: u8) -> Result<Vec<u8>, String> {
    let subsamp = if planes.is_gray() {
        raw::TJSAMP_TJSAMP_GRAY
    } else {
        raw::TJSAMP_TJSAMP_420
    };
    let ptrs: Vec<*const u8> = planes.planes().iter().map(|p| p.data.as_ptr()).collect();
    let strides: Vec<libc::c_int> = planes
        .planes()
        .iter()
        .map(|p| p.width as libc::c_int)
        .collect();
    compress(
        planes.width,
        planes.height,
        quality,
        subsamp,
        |handle, out, size| {
            // SAFETY: plane pointers/strides describe buffers of the sizes TurboJPEG
            // expects for this width/height and subsampling (Planes keeps 4:2:0 layout).
            unsafe {
                raw::tj3CompressFromYUVPlanes8(
                    handle,
                    ptrs.as_ptr(),
                    planes.width as libc::c_int,
                    strides.as_ptr(),
                    planes.height as libc::c_int,
                    out,
                    size,
                )
            }
        },
    )
}

/// Compresses packed RGB into a baseline 4:2:0 JPEG (libjpeg-turbo's SIMD
/// colour conversion and downsampling), with no metadata.
pub fn encode_rgb(rgb: &Rgb, quality: u8) -> Result<Vec<u8>, String> {
    if rgb.data.len() != rgb.width as usize * rgb.height as usize * 3 {
        return Err("RGB buffer size does not match its dimensions".into());
    }
    compress(
        rgb.width,
        rgb.height,
        quality,
        raw::TJSAMP_TJSAMP_420,
        |handle, out, size| {
            // SAFETY: the buffer holds width × height RGB pixels, rows packed (pitch = 3 × width).
            unsafe {
                raw::tj3Compress8(
                    handle,
                    rgb.data.as_ptr(),
                    rgb.width as libc::c_int,
                    (rgb.width * 3) as libc::c_int,
                    rgb.height as libc::c_int,
                    raw::TJPF_TJPF_RGB,
                    out,
                    size,
                )
            }
        },
    )
}

thread_local! {
    /// One compressor per thread, reused across variants and images.
    static COMPRESSOR: RefCell<Option<Handle>> = const { RefCell::new(None) };
}

/// Runs one compression call into a worst-case-sized buffer from the scratch
/// pool (TurboJPEG would otherwise allocate, and the kernel fault in, a fresh
/// one per variant) and copies out the JPEG.
fn compress(
    width: u32,
    height: u32,
    quality: u8,
    subsamp: i32,
    call: impl FnOnce(raw::tjhandle, *mut *mut u8, *mut raw::size_t) -> libc::c_int,
) -> Result<Vec<u8>, String> {
    COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let handle = match cell.take() {
            Some(handle) => handle,
            None => Handle::new(raw::TJINIT_TJINIT_COMPRESS)?,
        };
        handle.set(raw::TJPARAM_TJPARAM_QUALITY, quality as i32)?;
        handle.set(raw::TJPARAM_TJPARAM_SUBSAMP, subsamp)?;
        // Standard Huffman tables, not optimised ones: optimising needs a second
        // pass that takes ~4x the encode time of a 512x512 thumbnail (about 1.7 ms)
        // to save ~2.5% of its bytes. Pixels are identical either way.
        handle.set(raw::TJPARAM_TJPARAM_OPTIMIZE, 0)?;
        handle.set(raw::TJPARAM_TJPARAM_NOREALLOC, 1)?;
        // SAFETY: pure size computation on plain integers.
        let capacity = unsafe { raw::tj3JPEGBufSize(width as i32, height as i32, subsamp) };
        if capacity == 0 {
            return Err(format!("no JPEG buffer size for {width}x{height}"));
        }
        let mut buf = crate::scratch::zeroed(capacity as usize);
        let mut out = buf.as_mut_ptr();
        let mut size = capacity;
        let rc = call(handle.0, &mut out, &mut size);
        // NOREALLOC: TurboJPEG writes into `buf` and never swaps the pointer.
        let result = handle.check(rc).and_then(|_| {
            buf.get(..size as usize)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| "JPEG larger than its worst-case buffer".to_string())
        });
        crate::scratch::recycle(buf);
        *cell = Some(handle);
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    extern "C" {
        /// csrc/keep_decode.c: runs the decode with a wrong struct size, so
        /// that jpeg_CreateDecompress itself raises the error.
        fn sy_test_create_fails(msg: *mut libc::c_char, msg_len: libc::size_t) -> libc::c_int;
    }

    /// An error inside jpeg_CreateDecompress must land on an armed jump
    /// buffer (with setjmp after create, this longjmps into garbage).
    #[test]
    fn an_error_while_creating_the_decoder_is_returned_not_a_crash() {
        let mut msg = [0 as libc::c_char; 200];
        // SAFETY: msg is a writable buffer of msg.len() bytes; the C side
        // NUL-terminates what it writes.
        let rc = unsafe { sy_test_create_fails(msg.as_mut_ptr(), msg.len()) };
        // SAFETY: NUL-terminated by the C side (or still all zeros).
        let msg = unsafe { CStr::from_ptr(msg.as_ptr()) }.to_string_lossy();
        assert_eq!(rc, 1, "SY_ERROR expected, message {msg:?}");
        assert!(msg.contains("struct mismatch"), "{msg}");
    }

    /// Corrupt data past a valid header fails on the shim's path with a
    /// message, and leaves the process able to decode the next file.
    #[test]
    fn the_shim_refuses_corrupt_scan_data() {
        let jpeg = crate::fixtures::jpeg(&crate::fixtures::photo(640, 480, 5), 90);
        let limits = DecodeLimits {
            max_pixels: 50_000_000,
            max_scans: 500,
            max_memory_mb: 64,
        };
        let keep = Some(KeepColumns { x0: 80, x1: 560 });
        let mut corrupt = jpeg.clone();
        // Replace the entropy-coded data after the header with a marker soup.
        let sos = corrupt
            .windows(2)
            .position(|w| w == [0xFF, 0xDA])
            .expect("a scan");
        for (i, b) in corrupt[sos + 20..].iter_mut().enumerate() {
            *b = if i % 2 == 0 {
                0xFF
            } else {
                0xD0 + (i % 7) as u8
            };
        }
        let err = Decoder::new(&corrupt, limits)
            .unwrap()
            .decode_planes(&corrupt, 8, keep)
            .unwrap_err();
        assert!(!err.is_empty());
        let ok = Decoder::new(&jpeg, limits)
            .unwrap()
            .decode_planes(&jpeg, 8, keep);
        assert!(ok.is_ok(), "{:?}", ok.err());
    }
}
