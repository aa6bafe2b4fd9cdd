//! What a handler is built from: the ports of whichever backend runs it,
//! and the image settings. A handler's builder asks [`Deps`] for only the
//! ports it uses.
//!
//! A Lambda function's ports are made from its environment by direct calls
//! from [`Deps`]'s methods, not through a trait object: a binary links an
//! AWS client only when a handler it registers asks for that port (the
//! notifier's function links no S3, SNS or EventBridge client).

use std::sync::Arc;

use switchyard_imaging::{Limits, VariantSpec};
use switchyard_shared::ports::{BlobStore, EventPublisher, Table};

/// Why a port could not be had (a Lambda function without the variable that names it, say).
#[derive(Debug, thiserror::Error)]
#[error("{port}: {reason}")]
pub struct DepsError {
    pub port: &'static str,
    pub reason: String,
}

/// Where a backend's ports come from: the embedded and moto-mode systems
/// hand over adapters they built ([`Adapters`]); a test may hand its own.
pub trait Ports: Send + Sync {
    fn table(&self) -> Result<Arc<dyn Table>, DepsError>;
    fn blobs(&self) -> Result<Arc<dyn BlobStore>, DepsError>;
    fn publisher(&self) -> Result<Arc<dyn EventPublisher>, DepsError>;
}

/// Ports already built.
#[derive(Clone)]
pub struct Adapters {
    pub table: Arc<dyn Table>,
    pub blobs: Arc<dyn BlobStore>,
    pub publisher: Arc<dyn EventPublisher>,
}

impl Ports for Adapters {
    fn table(&self) -> Result<Arc<dyn Table>, DepsError> {
        Ok(self.table.clone())
    }
    fn blobs(&self) -> Result<Arc<dyn BlobStore>, DepsError> {
        Ok(self.blobs.clone())
    }
    fn publisher(&self) -> Result<Arc<dyn EventPublisher>, DepsError> {
        Ok(self.publisher.clone())
    }
}

/// The image processor's settings: which thumbnails, within which limits.
#[derive(Debug, Clone)]
pub struct ImageSettings {
    pub variants: Vec<VariantSpec>,
    pub limits: Limits,
}

impl Default for ImageSettings {
    fn default() -> Self {
        ImageSettings {
            variants: VariantSpec::defaults(),
            limits: Limits::default(),
        }
    }
}

#[derive(Clone)]
enum Source {
    Ports(Arc<dyn Ports>),
    #[cfg(feature = "lambda")]
    LambdaEnv(Arc<lambda_env::LambdaEnv>),
}

/// What a handler is built from: the ports of whichever backend runs it,
/// and the image settings.
#[derive(Clone)]
pub struct Deps {
    source: Source,
    images: ImageSettings,
}

impl Deps {
    pub fn new(ports: Arc<dyn Ports>, images: ImageSettings) -> Self {
        Deps {
            source: Source::Ports(ports),
            images,
        }
    }

    /// A Lambda function's: each port made from its environment when asked.
    #[cfg(feature = "lambda")]
    pub(crate) fn from_lambda_env(env: lambda_env::LambdaEnv, images: ImageSettings) -> Self {
        Deps {
            source: Source::LambdaEnv(Arc::new(env)),
            images,
        }
    }

    pub fn table(&self) -> Result<Arc<dyn Table>, DepsError> {
        match &self.source {
            Source::Ports(p) => p.table(),
            #[cfg(feature = "lambda")]
            Source::LambdaEnv(env) => env.table(),
        }
    }

    pub fn blobs(&self) -> Result<Arc<dyn BlobStore>, DepsError> {
        match &self.source {
            Source::Ports(p) => p.blobs(),
            #[cfg(feature = "lambda")]
            Source::LambdaEnv(env) => env.blobs(),
        }
    }

    pub fn publisher(&self) -> Result<Arc<dyn EventPublisher>, DepsError> {
        match &self.source {
            Source::Ports(p) => p.publisher(),
            #[cfg(feature = "lambda")]
            Source::LambdaEnv(env) => env.publisher(),
        }
    }

    pub fn images(&self) -> &ImageSettings {
        &self.images
    }
}

#[cfg(feature = "lambda")]
pub(crate) mod lambda_env {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use switchyard_shared::aws::lambda::{
        blobs_from_env, publisher_from_env, table_from_env, MissingEnv,
    };
    use switchyard_shared::aws::sdk::config::SdkConfig;
    use switchyard_shared::ports::{BlobStore, Destination, EventPublisher, Table};

    use super::DepsError;

    /// A Lambda function's ports, each built from its environment variable.
    pub(crate) struct LambdaEnv {
        pub config: SdkConfig,
        pub routes: BTreeMap<String, Destination>,
    }

    fn missing(port: &'static str) -> impl FnOnce(MissingEnv) -> DepsError {
        move |e| DepsError {
            port,
            reason: e.to_string(),
        }
    }

    impl LambdaEnv {
        pub fn table(&self) -> Result<Arc<dyn Table>, DepsError> {
            Ok(Arc::new(
                table_from_env(&self.config).map_err(missing("table"))?,
            ))
        }
        pub fn blobs(&self) -> Result<Arc<dyn BlobStore>, DepsError> {
            Ok(Arc::new(
                blobs_from_env(&self.config).map_err(missing("blobs"))?,
            ))
        }
        pub fn publisher(&self) -> Result<Arc<dyn EventPublisher>, DepsError> {
            Ok(Arc::new(publisher_from_env(
                &self.config,
                self.routes.clone(),
            )))
        }
    }
}
