//! Lossy WebP encoding with libwebp, fed the Y/Cb/Cr 4:2:0 planes directly
//! (WebP's own layout), so no RGB round trip is needed. The output is a bare
//! VP8 bitstream in a RIFF container: no EXIF, XMP or ICC chunks.

use libwebp_sys as sys;

use crate::planes::{Planes, Rgb};

pub fn encode_planes(planes: &Planes, quality: u8) -> Result<Vec<u8>, String> {
    let [y, u, v] = planes.to_420_color();
    let mut picture =
        sys::WebPPicture::new().map_err(|_| "libwebp version mismatch".to_string())?;
    picture.use_argb = 0;
    picture.colorspace = sys::WebPEncCSP::WEBP_YUV420;
    picture.width = planes.width as libc::c_int;
    picture.height = planes.height as libc::c_int;
    // libwebp only reads the planes; it takes *mut for historical reasons.
    picture.y = y.data.as_ptr() as *mut u8;
    picture.u = u.data.as_ptr() as *mut u8;
    picture.v = v.data.as_ptr() as *mut u8;
    picture.y_stride = y.width as libc::c_int;
    picture.uv_stride = u.width as libc::c_int;
    // The planes outlive the encode; the picture owns no memory of its own.
    encode(picture, quality)
}

/// Encodes packed RGB; libwebp converts to 4:2:0 itself.
pub fn encode_rgb(rgb: &Rgb, quality: u8) -> Result<Vec<u8>, String> {
    let mut picture =
        sys::WebPPicture::new().map_err(|_| "libwebp version mismatch".to_string())?;
    picture.use_argb = 0;
    picture.width = rgb.width as libc::c_int;
    picture.height = rgb.height as libc::c_int;
    // SAFETY: the buffer holds width × height packed RGB pixels with stride 3 × width;
    // the import allocates picture memory, released by WebPPictureFree below.
    let ok = unsafe {
        sys::WebPPictureImportRGB(
            &mut picture,
            rgb.data.as_ptr(),
            (rgb.width * 3) as libc::c_int,
        )
    };
    if ok == 0 {
        // SAFETY: releases whatever the failed import allocated.
        unsafe { sys::WebPPictureFree(&mut picture) };
        return Err("libwebp could not import the pixels".into());
    }
    encode(picture, quality)
}

fn encode(mut picture: sys::WebPPicture, quality: u8) -> Result<Vec<u8>, String> {
    let mut config = std::mem::MaybeUninit::<sys::WebPConfig>::uninit();
    // SAFETY: WebPConfigInitInternal fully initialises the struct on success.
    let ok = unsafe {
        sys::WebPConfigInitInternal(
            config.as_mut_ptr(),
            sys::WebPPreset::WEBP_PRESET_DEFAULT,
            quality as f32,
            sys::WEBP_ENCODER_ABI_VERSION as libc::c_int,
        )
    };
    if ok == 0 {
        return Err("libwebp version mismatch".into());
    }
    // SAFETY: initialised above.
    let mut config = unsafe { config.assume_init() };
    // Method 4 is libwebp's default speed/size balance; one thread, no randomness.
    config.method = 4;
    config.thread_level = 0;
    let mut writer = std::mem::MaybeUninit::<sys::WebPMemoryWriter>::uninit();
    // SAFETY: initialises the writer; it is cleared below on every path.
    unsafe { sys::WebPMemoryWriterInit(writer.as_mut_ptr()) };
    // SAFETY: initialised just above.
    let mut writer = unsafe { writer.assume_init() };
    picture.writer = Some(sys::WebPMemoryWrite);
    picture.custom_ptr = (&mut writer as *mut sys::WebPMemoryWriter).cast();
    // SAFETY: config and picture are initialised and the picture's pixels are valid.
    let ok = unsafe { sys::WebPEncode(&config, &mut picture) };
    let result = if ok != 0 {
        // SAFETY: on success the writer holds `size` bytes at `mem`.
        Ok(unsafe { std::slice::from_raw_parts(writer.mem, writer.size) }.to_vec())
    } else {
        Err(format!("libwebp error {:?}", picture.error_code))
    };
    // SAFETY: frees the writer's buffer and whatever the picture allocated
    // (nothing, when it points at our planes).
    unsafe {
        sys::WebPMemoryWriterClear(&mut writer);
        sys::WebPPictureFree(&mut picture);
    }
    result
}
