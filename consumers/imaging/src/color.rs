//! Colour profiles: outputs carry no ICC profile, so they must be sRGB. A
//! source tagged with another RGB profile (Display P3 from phones, Adobe RGB
//! from cameras) has its finished thumbnail converted to sRGB with moxcms.
//! Converting after the resize, on a few hundred thousand pixels, is what
//! libvips does too and costs well under a millisecond.

use std::sync::Arc;

use moxcms::{ColorProfile, DataColorSpace, Layout, TransformExecutor, TransformOptions};

use crate::planes::Rgb;

/// A conversion from the source's profile to sRGB, or none when the source is
/// untagged, already sRGB, or carries a profile we cannot use (then the pixels
/// are taken as sRGB, which is what browsers do with a broken profile).
pub struct ToSrgb(Arc<dyn TransformExecutor<u8> + Send + Sync>);

impl ToSrgb {
    pub fn from_icc(icc: Option<&[u8]>) -> Option<ToSrgb> {
        let profile = match ColorProfile::new_from_slice(icc?) {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(error = %e, "ignoring an unreadable ICC profile");
                return None;
            }
        };
        if profile.color_space != DataColorSpace::Rgb || is_srgb(&profile) {
            return None;
        }
        let srgb = ColorProfile::new_srgb();
        match profile.create_transform_8bit(
            Layout::Rgb,
            &srgb,
            Layout::Rgb,
            TransformOptions::default(),
        ) {
            Ok(t) => Some(ToSrgb(t)),
            Err(e) => {
                tracing::debug!(error = %e, "ICC profile cannot be converted; treating the image as sRGB");
                None
            }
        }
    }

    pub fn apply(&self, rgb: &Rgb) -> Result<Rgb, String> {
        let mut data = vec![0u8; rgb.data.len()];
        self.0
            .transform(&rgb.data, &mut data)
            .map_err(|e| format!("colour conversion: {e}"))?;
        Ok(Rgb { data, ..*rgb })
    }
}

/// sRGB primaries (as D50-adapted colorants) mean an sRGB-like profile: the
/// tone curves of such profiles differ from sRGB's by less than a code value.
fn is_srgb(profile: &ColorProfile) -> bool {
    let srgb = ColorProfile::new_srgb();
    let close = |a: moxcms::Xyzd, b: moxcms::Xyzd| {
        (a.x - b.x).abs() < 0.003 && (a.y - b.y).abs() < 0.003 && (a.z - b.z).abs() < 0.003
    };
    close(profile.red_colorant, srgb.red_colorant)
        && close(profile.green_colorant, srgb.green_colorant)
        && close(profile.blue_colorant, srgb.blue_colorant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srgb_profiles_are_left_alone_and_wide_gamut_ones_converted() {
        let srgb = ColorProfile::new_srgb().encode().unwrap();
        assert!(ToSrgb::from_icc(Some(&srgb)).is_none());
        assert!(ToSrgb::from_icc(Some(b"not a profile")).is_none());
        let p3 = ColorProfile::new_display_p3().encode().unwrap();
        let convert = ToSrgb::from_icc(Some(&p3)).expect("P3 is converted");
        // Pure P3 green lies outside sRGB: it maps to a clipped, less-blue-free green.
        let one = |px: [u8; 3]| {
            convert
                .apply(&Rgb {
                    width: 1,
                    height: 1,
                    data: px.to_vec(),
                })
                .unwrap()
                .data
        };
        // Pure P3 green lies outside sRGB: it clips to pure sRGB green.
        assert_eq!(one([0, 255, 0]), [0, 255, 0]);
        let grey = one([128, 128, 128]);
        assert!(
            grey.iter().all(|&v| (v as i32 - 128).abs() <= 1),
            "neutral stays neutral: {grey:?}"
        );
        let red = one([200, 60, 60]);
        assert!(
            red[0] > 200,
            "P3 red is more saturated than the same sRGB values: {red:?}"
        );
    }
}
