//! `switchyard images ...` and `switchyard bench images`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use switchyard_imaging::{Limits, VariantSpec};

use super::GlobalArgs;

#[derive(Debug, Args)]
pub struct ImagesArgs {
    #[command(subcommand)]
    pub command: ImagesCommand,
}

#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// Make thumbnails of local files, exactly as the image processor does.
    Thumbnail {
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        /// NAME=WxH:cover|contain:jpeg|webp:QUALITY (repeatable; default 512 and 128 covers, JPEG q80).
        #[arg(long = "variant")]
        variants: Vec<VariantSpec>,
    },
}

#[derive(Debug, Args)]
pub struct BenchImagesArgs {}

pub async fn run(_global: &GlobalArgs, args: ImagesArgs) -> anyhow::Result<ExitCode> {
    let ImagesCommand::Thumbnail {
        inputs,
        out,
        variants,
    } = args.command;
    let variants = if variants.is_empty() {
        VariantSpec::defaults()
    } else {
        variants
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut failed = false;
    for input in &inputs {
        let bytes = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
        let stem = input
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("image");
        match switchyard_imaging::process(&bytes, &variants, &Limits::default()) {
            Ok(outputs) => {
                for o in outputs {
                    let path = out.join(format!("{stem}-{}.{}", o.name, o.format.extension()));
                    std::fs::write(&path, &o.bytes)
                        .with_context(|| format!("writing {}", path.display()))?;
                    println!(
                        "{} {} {}x{} {} bytes",
                        input.display(),
                        path.display(),
                        o.width,
                        o.height,
                        o.bytes.len()
                    );
                }
            }
            Err(rejection) => {
                failed = true;
                println!(
                    "{} rejected {}: {rejection}",
                    input.display(),
                    rejection.code()
                );
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

pub async fn bench(_global: &GlobalArgs, _args: BenchImagesArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("the images benchmark is not built yet")
}
