//! The part of [`crc-fast`](https://crates.io/crates/crc-fast)'s API that
//! `aws-smithy-checksums` calls (S3's flexible checksums: CRC-32, CRC-32C and
//! CRC-64/NVME), built on two well-kept crates: `crc32fast` (hardware CRC-32,
//! S3's default, already linked) and `crc` (the two others, from one 256-entry
//! table each).
//!
//! Why it exists: crc-fast picks the algorithm at run time from its whole
//! catalogue, so a binary that computes one CRC links the tables of all of
//! them (0.66 MB), which is most of what keeps the image processor's Lambda
//! bootstrap over 10 MB. The root `Cargo.toml` patches it in for the whole
//! workspace, so the AWS tests on moto check the same code the Lambdas run.
//!
//! ```
//! let mut digest = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32IsoHdlc);
//! digest.update(b"1234");
//! digest.update(b"56789");
//! assert_eq!(digest.finalize(), 0xCBF4_3926);
//! ```

use crc::{Crc, Table, CRC_32_ISCSI, CRC_64_NVME};

/// The CRCs the AWS SDK asks for, named as crc-fast names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CrcAlgorithm {
    /// CRC-32 (zlib, S3's `CRC32`).
    Crc32IsoHdlc,
    /// CRC-32C (Castagnoli, S3's `CRC32C`).
    Crc32Iscsi,
    /// CRC-64/NVME (S3's `CRC64NVME`).
    Crc64Nvme,
}

static CRC32C: Crc<u32, Table<1>> = Crc::<u32, Table<1>>::new(&CRC_32_ISCSI);
static CRC64_NVME: Crc<u64, Table<1>> = Crc::<u64, Table<1>>::new(&CRC_64_NVME);

/// A running checksum.
#[derive(Clone)]
pub struct Digest {
    algorithm: CrcAlgorithm,
    state: State,
}

#[derive(Clone)]
enum State {
    Crc32(crc32fast::Hasher),
    Crc32c(crc::Digest<'static, u32, Table<1>>),
    Crc64Nvme(crc::Digest<'static, u64, Table<1>>),
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Digest")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl Digest {
    pub fn new(algorithm: CrcAlgorithm) -> Self {
        let state = match algorithm {
            CrcAlgorithm::Crc32IsoHdlc => State::Crc32(crc32fast::Hasher::new()),
            CrcAlgorithm::Crc32Iscsi => State::Crc32c(CRC32C.digest()),
            CrcAlgorithm::Crc64Nvme => State::Crc64Nvme(CRC64_NVME.digest()),
        };
        Digest { algorithm, state }
    }

    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            State::Crc32(h) => h.update(data),
            State::Crc32c(d) => d.update(data),
            State::Crc64Nvme(d) => d.update(data),
        }
    }

    /// The checksum of everything so far (the digest can go on).
    pub fn finalize(&self) -> u64 {
        match &self.state {
            State::Crc32(h) => u64::from(h.clone().finalize()),
            State::Crc32c(d) => u64::from(d.clone().finalize()),
            State::Crc64Nvme(d) => d.clone().finalize(),
        }
    }

    /// Starts over.
    pub fn reset(&mut self) {
        *self = Digest::new(self.algorithm);
    }
}

/// The checksum of `data` in one call.
pub fn checksum(algorithm: CrcAlgorithm, data: &[u8]) -> u64 {
    let mut digest = Digest::new(algorithm);
    digest.update(data);
    digest.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The catalogue's check values: the CRC of the ASCII text "123456789".
    #[test]
    fn check_values_from_the_catalogue() {
        assert_eq!(
            checksum(CrcAlgorithm::Crc32IsoHdlc, b"123456789"),
            0xCBF4_3926
        );
        assert_eq!(
            checksum(CrcAlgorithm::Crc32Iscsi, b"123456789"),
            0xE306_9283
        );
        assert_eq!(
            checksum(CrcAlgorithm::Crc64Nvme, b"123456789"),
            0xAE8B_1486_0A79_9888
        );
    }

    /// S3's documented checksums of an empty object ("AAAAAA==", and
    /// "AAAAAAAAAAA=" for CRC-64/NVME) are all zero.
    #[test]
    fn empty_input_is_zero() {
        for a in [
            CrcAlgorithm::Crc32IsoHdlc,
            CrcAlgorithm::Crc32Iscsi,
            CrcAlgorithm::Crc64Nvme,
        ] {
            assert_eq!(checksum(a, b""), 0, "{a:?}");
        }
    }

    #[test]
    fn pieces_give_the_checksum_of_the_whole_and_reset_starts_over() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for a in [
            CrcAlgorithm::Crc32IsoHdlc,
            CrcAlgorithm::Crc32Iscsi,
            CrcAlgorithm::Crc64Nvme,
        ] {
            let mut d = Digest::new(a);
            for chunk in data.chunks(333) {
                d.update(chunk);
            }
            assert_eq!(d.finalize(), checksum(a, &data), "{a:?}");
            d.reset();
            d.update(b"123456789");
            assert_eq!(d.finalize(), checksum(a, b"123456789"), "{a:?}");
        }
    }
}
