//! The check a version passes before it is activated: its signed release chain (data ->
//! model -> eval run -> card, `emguard attest sign`) verifies against the files. The checking
//! is the release crate's ([`emguard_release::attest::verify_chain`]); this module only names
//! the files and words the refusal.

use std::path::{Path, PathBuf};

use emguard_release::attest::{self, ChainFiles};

use crate::config::AttestationConfig;

/// A version's chain: the bundle, the trusted key and the files it signs.
#[derive(Debug, Clone)]
pub struct SignedChain {
    pub bundle: PathBuf,
    public_key: PathBuf,
    files: ChainFiles,
}

/// Why a version was not activated: the chain file and what failed (each broken link, or
/// the file that could not be read).
#[derive(Debug, Clone, thiserror::Error)]
#[error("its signed chain {} does not verify: {}", bundle.display(), problems.join("; "))]
pub struct ChainRefused {
    pub bundle: PathBuf,
    pub problems: Vec<String>,
}

impl SignedChain {
    /// `served_model` is the GGUF a local version serves: its attested file (an upstream
    /// version's config names the file instead).
    pub fn new(config: &AttestationConfig, served_model: Option<&Path>) -> SignedChain {
        let model = served_model
            .map(Path::to_path_buf)
            .or_else(|| config.model.clone())
            .expect("config validation: an upstream version names its attested model file");
        SignedChain {
            bundle: config.bundle.clone(),
            public_key: config.public_key.clone(),
            files: ChainFiles {
                dataset: config.dataset.clone(),
                manifest: config.manifest.clone(),
                model,
                results: config.results.clone(),
                card: config.card.clone(),
                run_model: config.run_model.clone(),
            },
        }
    }

    /// Re-hashes every file and checks every signature and link (blocking: it reads the
    /// model file whole). Ok only when every link verifies.
    pub fn verify(&self) -> Result<(), ChainRefused> {
        let refused = |problems: Vec<String>| ChainRefused {
            bundle: self.bundle.clone(),
            problems,
        };
        let key = emguard_audit::signing::read_verifying_key(&self.public_key)
            .map_err(|e| refused(vec![format!("the public key: {e}")]))?;
        let report = attest::verify_chain(&self.files, &self.bundle, &key)
            .map_err(|e| refused(vec![e.to_string()]))?;
        if report.verified() {
            Ok(())
        } else {
            Err(refused(report.problems()))
        }
    }

    /// [`SignedChain::verify`] off the async workers.
    pub async fn verify_blocking(&self) -> Result<(), ChainRefused> {
        let chain = self.clone();
        tokio::task::spawn_blocking(move || chain.verify())
            .await
            .unwrap_or_else(|e| {
                Err(ChainRefused {
                    bundle: self.bundle.clone(),
                    problems: vec![format!("the check did not finish: {e}")],
                })
            })
    }
}
