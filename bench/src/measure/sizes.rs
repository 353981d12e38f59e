//! Deployment artefact sizes: the `bootstrap` that `cargo lambda build
//! --release` leaves (stripped by the release profile's `strip = true`;
//! `scripts/check-template` verifies that) and the zip that
//! `--output-format zip` makes of it, which is what Lambda downloads on a
//! cold start. Laid out as `<lambda dir>/<function>/bootstrap[.zip]`.

use crate::error::BenchError;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One function's artefacts for one architecture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArtifactSize {
    pub function: String,
    pub arch: String,
    pub bootstrap_bytes: u64,
    pub zip_bytes: u64,
}

/// A `cargo lambda build --lambda-dir` output directory and its architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LambdaDir {
    pub arch: String,
    pub path: PathBuf,
}

impl std::str::FromStr for LambdaDir {
    type Err = String;

    /// `ARCH=PATH`, such as `arm64=target/bench/lambda/arm64`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (arch, path) = s
            .split_once('=')
            .filter(|(arch, path)| !arch.is_empty() && !path.is_empty())
            .ok_or_else(|| format!("expected ARCH=PATH, got {s:?}"))?;
        Ok(Self {
            arch: arch.to_owned(),
            path: PathBuf::from(path),
        })
    }
}

/// Sizes of `functions` in every directory; a function missing from a
/// directory is an error unless it is listed in `optional`.
pub fn measure(
    dirs: &[LambdaDir],
    functions: &[&str],
    optional: &[&str],
) -> Result<Vec<ArtifactSize>, BenchError> {
    let mut sizes = Vec::new();
    for dir in dirs {
        for &function in functions {
            let bootstrap = dir.path.join(function).join("bootstrap");
            if !bootstrap.exists() && optional.contains(&function) {
                continue;
            }
            sizes.push(ArtifactSize {
                function: function.to_owned(),
                arch: dir.arch.clone(),
                bootstrap_bytes: file_size(&bootstrap)?,
                zip_bytes: file_size(&bootstrap.with_extension("zip"))?,
            });
        }
    }
    Ok(sizes)
}

/// The size of the file at `path`, in bytes.
pub fn file_size(path: &Path) -> Result<u64, BenchError> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(BenchError::io(format!(
            "reading the size of {}",
            path.display()
        )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_dirs_are_arch_equals_path() {
        let dir: LambdaDir = "arm64=target/bench/lambda/arm64".parse().unwrap();
        assert_eq!(dir.arch, "arm64");
        assert_eq!(dir.path, PathBuf::from("target/bench/lambda/arm64"));
        assert!("arm64".parse::<LambdaDir>().is_err());
        assert!("=path".parse::<LambdaDir>().is_err());
    }

    #[test]
    fn sizes_are_read_per_function_and_arch() {
        let root = std::env::temp_dir().join(format!("jobline-bench-{}", uuid::Uuid::new_v4()));
        let function = root.join("api");
        std::fs::create_dir_all(&function).unwrap();
        std::fs::write(function.join("bootstrap"), [0u8; 300]).unwrap();
        std::fs::write(function.join("bootstrap.zip"), [0u8; 120]).unwrap();
        let dirs = [LambdaDir {
            arch: "x86_64".into(),
            path: root.clone(),
        }];
        let sizes = measure(&dirs, &["api", "hello"], &["hello"]).unwrap();
        assert_eq!(
            sizes,
            [ArtifactSize {
                function: "api".into(),
                arch: "x86_64".into(),
                bootstrap_bytes: 300,
                zip_bytes: 120,
            }]
        );
        assert!(measure(&dirs, &["worker"], &[]).is_err(), "required");
        std::fs::remove_dir_all(root).unwrap();
    }
}
