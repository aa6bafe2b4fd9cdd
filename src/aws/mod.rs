//! The AWS backend (AWS itself, or a moto server): the provisioner that
//! creates a topology's resources, and the system that runs its consumers
//! against them with the pollers of [`crate::runtime`] (`up --backend aws`).
//! The adapters are `switchyard_shared::aws`.

pub mod provision;
pub mod system;

pub use provision::{provision, AwsResources};
pub use system::AwsSystem;
